//! Harness of the identity tests: the service harness (fresh database, fixture persons), an hsm
//! in a temporary directory holding the fixture cards' internal-authentication master (test key
//! from fixtures/cards/tianjin-3g.toml, read as plain TOML), the identity service and its
//! router driven with `oneshot`, and card-core's virtual card answering INTERNAL AUTHENTICATE
//! as the card would, with the keys of its own image.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::http::Request;
use card_core::vcard::{CardImage, VirtualCard};
use card_core::{Session, auth, ssc};
use hsm::keystore::{Exportability, KeyAlgorithm, KeyHeader, KeyUsage, ModeOfUse};
use serde_json::{Value, json};
use settlement::identity::api::{IdentityState, router};
use settlement::identity::{Identity, IdentityOptions};
use settlement::service::GatewayConfig;
use tower::ServiceExt;

use crate::common::Db;
use crate::service_support::{Harness, fixtures};

/// The 3.00 fixture card and its 卡号 (fixtures/persons/cards.csv: person 12000000000000000001,
/// 赵文博, ID 120101198805121236, 参保地 120000).
pub const CARD: &str = "tianjin-3g.toml";
pub const CARD_NO: &str = "T00012345";
pub const NAME: &str = "赵文博";
pub const CERTNO: &str = "120101198805121236";

pub fn image_toml(name: &str) -> toml::Table {
    std::fs::read_to_string(fixtures().join("cards").join(name))
        .unwrap()
        .parse()
        .unwrap()
}

/// 卡识别码 of an image, 32 hex digits (plain TOML, not card-core's parser).
pub fn card_id(name: &str) -> String {
    image_toml(name)["ssse"]["card_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A virtual card on `name`'s image.
pub fn card(name: &str) -> VirtualCard {
    let text = std::fs::read_to_string(fixtures().join("cards").join(name)).unwrap();
    VirtualCard::new(CardImage::from_toml_str(&text).unwrap(), 7)
}

/// The card's INTERNAL AUTHENTICATE answer (32 hex digits) to the node's random (16 hex
/// digits), 过程因子 = the last 8 bytes of the 卡识别码: SELECT SSSE, then 00 88 00 00 10.
pub fn answer(card: &mut VirtualCard, card_id_hex: &str, random_hex: &str) -> String {
    let id = hex::decode(card_id_hex).unwrap();
    let factor: [u8; 8] = id[8..16].try_into().unwrap();
    let random: [u8; 8] = hex::decode(random_hex).unwrap().try_into().unwrap();
    let mut session = Session::new(card);
    ssc::select_ssse(&mut session).unwrap();
    hex::encode_upper(auth::internal_authenticate(&mut session, &factor, &random).unwrap())
}

pub struct IdHarness {
    pub h: Harness,
    pub identity: Arc<Identity>,
    pub hsm: Arc<Mutex<hsm::ops::Hsm>>,
    pub hsm_dir: tempfile::TempDir,
    pub router: Router,
}

/// An hsm holding the fixture internal-authentication master as `ssc-int-auth` (usage 10).
pub fn hsm_with_master() -> (tempfile::TempDir, Arc<Mutex<hsm::ops::Hsm>>) {
    let dir = tempfile::tempdir().unwrap();
    let lmk = hsm::lmk::Lmk::from_bytes(&[0x5A; 32]).unwrap();
    let mut hsm = hsm::ops::Hsm::open(dir.path(), lmk).unwrap();
    let master = image_toml(CARD)["keys"]["ssse_internal_auth_master"]
        .as_str()
        .unwrap()
        .to_owned();
    let header = KeyHeader {
        alias: "ssc-int-auth".into(),
        algorithm: KeyAlgorithm::Sm4,
        usage: KeyUsage::SscInternalAuth,
        mode: ModeOfUse::X,
        version: *b"00",
        exportability: Exportability::NonExportable,
    };
    hsm.import_key_components("test", header, &[&hex::decode(master).unwrap()], None)
        .unwrap();
    (dir, Arc::new(Mutex::new(hsm)))
}

impl IdHarness {
    pub async fn new(db: Db) -> IdHarness {
        IdHarness::with(db, IdentityOptions::default(), GatewayConfig::default()).await
    }

    pub async fn with(db: Db, options: IdentityOptions, gateway: GatewayConfig) -> IdHarness {
        let h = Harness::with_gateway(db, gateway).await;
        let (hsm_dir, hsm) = hsm_with_master();
        let identity = Arc::new(
            Identity::open(&h.ledger, hsm.clone(), options)
                .await
                .unwrap(),
        );
        let router = router(IdentityState {
            identity: identity.clone(),
            service: h.state.clone(),
        });
        IdHarness {
            h,
            identity,
            hsm,
            hsm_dir,
            router,
        }
    }

    /// One request; returns (status, JSON body or Null).
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, String)],
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = Request::builder().method(method).uri(path);
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let body = match body {
            Some(value) => {
                request = request.header("content-type", "application/json");
                Body::from(value.to_string())
            }
            None => Body::empty(),
        };
        let response = self
            .router
            .clone()
            .oneshot(request.body(body).unwrap())
            .await
            .unwrap();
        let status = response.status().as_u16();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap()
        };
        (status, value)
    }

    pub async fn challenge(&self) -> Value {
        let (status, challenge) = self
            .request("POST", "/identity/v1/challenges", &[], None)
            .await;
        assert_eq!(status, 201, "{challenge}");
        challenge
    }

    /// A whole sign-in with `image`'s card claiming `card_no`; returns (status, body).
    pub async fn sign_in(&self, image: &str, card_no: &str, pin_verified: bool) -> (u16, Value) {
        let challenge = self.challenge().await;
        let id = card_id(image);
        let answer = answer(&mut card(image), &id, challenge["random"].as_str().unwrap());
        self.request(
            "POST",
            "/identity/v1/signin",
            &[],
            Some(json!({
                "challenge_id": challenge["challenge_id"],
                "card_id": id,
                "card_no": card_no,
                "answer": answer,
                "pin_verified": pin_verified,
            })),
        )
        .await
    }

    /// A token of the fixture card's holder.
    pub async fn token(&self) -> String {
        let (status, body) = self.sign_in(CARD, CARD_NO, true).await;
        assert_eq!(status, 201, "{body}");
        body["token"].as_str().unwrap().to_owned()
    }

    pub fn bearer(token: &str) -> Vec<(&'static str, String)> {
        vec![("authorization", format!("Bearer {token}"))]
    }

    pub async fn finish(self) {
        drop(self.router);
        drop(self.identity);
        self.h.finish().await;
    }
}

//! Harness of the partner API tests: the settlement core of `service_support` (a fresh database
//! with the fixture persons), the directory imported from fixtures/catalog/uses.csv, and the
//! partner platform served on a loopback port with an operator, a consent issuer (kiosk1) and a
//! webhook signing key in a temporary hsm key store. Signed requests are made by the
//! independent Python client (partner_client/partner_client.py: `gmssl`, `cryptography`),
//! installed by scripts/ensure-python-deps.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use serde_json::{Value, json};
use settlement::directory::Directory;
use settlement::partner::{PartnerOptions, PartnerPlatform, WebhookOptions, WebhookSigner};
use settlement::service::GatewayConfig;

use crate::common::Db;
use crate::service_support::{Harness, fixtures};

/// Operator account and token.
pub const OPERATOR: (&str, &str) = ("ops1", "operator-token-0123456789");
/// Consent issuer (a kiosk's gateway caller) and its token.
pub const ISSUER: (&str, &str) = ("kiosk1", "kiosk-token-0123456789");
/// SM2 test private key (any scalar in 1..n-1; the payments QR test's partner key).
pub const SM2_PRIV: &str = "3945208F7B2144B13F36E38AC6D39F95889393692860B51A42FB81EF4DF7C5B8";
/// Another SM2 test private key (a forger's).
pub const SM2_PRIV_OTHER: &str = "128B2FA8BD433C6C068C8D803DFF79792A519A55171B1B650C23661D15897263";
/// P-256 test private key: RFC 6979 A.2.5's x.
pub const P256_PRIV: &str = "C9AFA9D845BA75166B5C215767B1D6934E50C3DB36E89B127B8A622B120F6721";

/// The fixture card of 陈晓 (fixtures/persons/cards.csv line 18): psn_no, certno, name.
pub const CARD_NO: &str = "B10020032";
pub const CARD_PSN_NO: &str = "11000000000000000003";
pub const CARD_CERTNO: &str = "110101199001010023";
pub const CARD_NAME: &str = "陈晓";

/// The use of the settlement operations (持卡就医结算) and of identity uses.
pub const USE_MEDICAL: &str = "P023";
pub const USE_OTHER: &str = "P035";

pub fn client_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/partner_client/partner_client.py")
}

/// Runs the Python client; returns its JSON output.
pub fn python(args: &[&str]) -> Value {
    let output = Command::new("python3")
        .arg(client_script())
        .args(args)
        .output()
        .expect("python3 (run scripts/ensure-python-deps)");
    assert!(
        output.status.success(),
        "partner_client.py {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// The public key of a private key, computed by the Python libraries.
pub fn public_key(alg: &str, private: &str) -> String {
    python(&["pubkey", "--alg", alg, "--priv", private])["public_key"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// One reply: status, Retry-After, JSON body.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub retry_after: Option<String>,
    pub body: Value,
}

impl Reply {
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }
}

/// A signed call as the Python client makes it.
#[derive(Debug, Clone, Default)]
pub struct Signed {
    pub alg: &'static str,
    pub private: &'static str,
    pub key_id: String,
    pub method: &'static str,
    pub path: String,
    pub query: Option<String>,
    pub body: Option<String>,
    /// Extra client arguments (tampering, time offset, repeat).
    pub extra: Vec<String>,
}

pub struct PartnerHarness {
    pub core: Harness,
    pub platform: Arc<PartnerPlatform>,
    pub url: String,
    pub http: reqwest::Client,
    server: tokio::task::JoinHandle<()>,
    _hsm_dir: tempfile::TempDir,
}

pub fn webhook_options() -> WebhookOptions {
    WebhookOptions {
        tick_ms: 50,
        backoff_ms_base: 100,
        backoff_ms_max: 400,
        attempts_max: 4,
        request_timeout_ms: 2_000,
        ..WebhookOptions::default()
    }
}

impl PartnerHarness {
    pub async fn start(db: Db) -> PartnerHarness {
        PartnerHarness::with_webhooks(db, webhook_options()).await
    }

    pub async fn with_webhooks(db: Db, webhooks: WebhookOptions) -> PartnerHarness {
        let core = Harness::new(db).await;
        let directory = Directory::from_ledger(&core.ledger).await.unwrap();
        let csv = std::fs::read(fixtures().join("catalog/uses.csv")).unwrap();
        directory.import_csv(&csv, "test.partner").await.unwrap();
        let hsm_dir = tempfile::tempdir().unwrap();
        let lmk = hsm::lmk::Lmk::from_bytes(&[0x5A; 32]).unwrap();
        let signer = WebhookSigner::open(hsm_dir.path(), lmk, "partner-webhook").unwrap();
        let options = PartnerOptions {
            operators: vec![(OPERATOR.0.to_owned(), OPERATOR.1.to_owned())],
            consent_issuers: GatewayConfig {
                callers: [(ISSUER.0.to_owned(), ISSUER.1.to_owned())].into(),
                ..GatewayConfig::default()
            },
            webhooks,
            ..PartnerOptions::default()
        };
        let platform = Arc::new(PartnerPlatform::new(
            &core.ledger,
            Arc::new(directory),
            options,
            Some(signer),
        ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let router = settlement::partner::api::router(platform.clone());
        let server = tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        PartnerHarness {
            core,
            platform,
            url,
            http: reqwest::Client::new(),
            server,
            _hsm_dir: hsm_dir,
        }
    }

    pub async fn finish(self) {
        self.server.abort();
        drop(self.platform);
        self.core.finish().await;
    }

    /// Registers an application; returns (app_id, key_id).
    pub async fn register(
        &self,
        partner: &str,
        alg: &str,
        private: &str,
        scopes: &[(&str, &str)],
        webhook_url: Option<&str>,
    ) -> (String, String) {
        let public = tokio::task::spawn_blocking({
            let (alg, private) = (alg.to_owned(), private.to_owned());
            move || public_key(&alg, &private)
        })
        .await
        .unwrap();
        let mut body = json!({
            "partner": {"code": partner, "name": format!("{partner} 合作方"), "kind": "bank"},
            "name": "测试应用",
            "scopes": scopes.iter().map(|(u, o)| json!({"use": u, "operation": o})).collect::<Vec<_>>(),
            "key": {"algorithm": if alg == "sm2" { "SM2" } else { "ECDSA_P256" }, "public_key": public},
        });
        if let Some(url) = webhook_url {
            body["webhook_url"] = json!(url);
        }
        let reply = self.post("/api/partner/v1/applications", &body, &[]).await;
        assert_eq!(reply.status, 201, "{:?}", reply.body);
        assert_eq!(reply.body["state"], "pending");
        (
            reply.body["app_id"].as_str().unwrap().to_owned(),
            reply.body["key_id"].as_str().unwrap().to_owned(),
        )
    }

    /// Approves an application (operator), granting `scopes` (all requested when `None`).
    pub async fn approve(
        &self,
        app_id: &str,
        scopes: Option<&[(&str, &str)]>,
        rate: Option<(u32, u32)>,
    ) -> Reply {
        let mut body = json!({"action": "approve"});
        if let Some(scopes) = scopes {
            body["scopes"] = scopes
                .iter()
                .map(|(u, o)| json!({"use": u, "operation": o}))
                .collect();
        }
        if let Some((per_minute, burst)) = rate {
            body["rate_per_minute"] = json!(per_minute);
            body["burst"] = json!(burst);
        }
        self.post(
            &format!("/api/partner/v1/admin/applications/{app_id}/decision"),
            &body,
            &[("authorization", format!("Bearer {}", OPERATOR.1))],
        )
        .await
    }

    pub async fn post(&self, path: &str, body: &Value, headers: &[(&str, String)]) -> Reply {
        let mut request = self.http.post(format!("{}{path}", self.url)).json(body);
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        Self::reply(request.send().await.unwrap()).await
    }

    pub async fn get(&self, path: &str, headers: &[(&str, String)]) -> Reply {
        let mut request = self.http.get(format!("{}{path}", self.url));
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        Self::reply(request.send().await.unwrap()).await
    }

    async fn reply(response: reqwest::Response) -> Reply {
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_owned());
        let text = response.text().await.unwrap();
        Reply {
            status,
            retry_after,
            body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
        }
    }

    /// Operator GET.
    pub async fn admin_get(&self, path: &str) -> Reply {
        self.get(path, &[("authorization", format!("Bearer {}", OPERATOR.1))])
            .await
    }

    /// Makes a signed call with the Python client; returns every reply (several with
    /// `--repeat`).
    pub async fn signed(&self, call: &Signed) -> Vec<Reply> {
        let mut args: Vec<String> = vec![
            "call".into(),
            "--base".into(),
            self.url.clone(),
            "--alg".into(),
            call.alg.into(),
            "--priv".into(),
            call.private.into(),
            "--key-id".into(),
            call.key_id.clone(),
            "--method".into(),
            call.method.into(),
            "--path".into(),
            call.path.clone(),
        ];
        if let Some(query) = &call.query {
            args.push("--query".into());
            args.push(query.clone());
        }
        if let Some(body) = &call.body {
            args.push("--body".into());
            args.push(body.clone());
        }
        args.extend(call.extra.iter().cloned());
        let out = tokio::task::spawn_blocking(move || {
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            python(&refs)
        })
        .await
        .unwrap();
        out["responses"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| Reply {
                status: u16::try_from(r["status"].as_u64().unwrap()).unwrap(),
                retry_after: r["retry_after"].as_str().map(str::to_owned),
                body: r["body"].clone(),
            })
            .collect()
    }

    /// One signed call's reply.
    pub async fn signed_one(&self, call: &Signed) -> Reply {
        self.signed(call).await.remove(0)
    }

    /// Issues a consent token as the kiosk would after the PIN was verified.
    pub async fn consent(
        &self,
        card_no: &str,
        app_id: &str,
        use_number: &str,
        extra: Value,
    ) -> Reply {
        let mut body = json!({
            "card_no": card_no,
            "app_id": app_id,
            "use": use_number,
            "channel": "kiosk",
            "pin_verified": true,
        });
        if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            for (k, v) in extra {
                body.insert(k.clone(), v.clone());
            }
        }
        self.post("/api/partner/v1/consents", &body, &issuer_headers())
            .await
    }

    /// The audit rows of an application, oldest first.
    pub async fn audit(&self, app_id: &str) -> Vec<Value> {
        let reply = self
            .admin_get(&format!(
                "/api/partner/v1/admin/audit?app_id={app_id}&limit=500"
            ))
            .await;
        assert_eq!(reply.status, 200, "{:?}", reply.body);
        let mut rows = reply.body["items"].as_array().unwrap().clone();
        rows.reverse();
        rows
    }
}

/// The gateway's `x-tif-*` headers of the consent issuer, fresh nonce each call.
pub fn issuer_headers() -> Vec<(&'static str, String)> {
    static NONCE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let timestamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    let nonce = format!(
        "n{}-{}",
        std::process::id(),
        NONCE.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let signature = settlement::service::gateway::signature(&timestamp, ISSUER.1, &nonce);
    vec![
        ("x-tif-paasid", ISSUER.0.to_owned()),
        ("x-tif-timestamp", timestamp),
        ("x-tif-nonce", nonce),
        ("x-tif-signature", signature),
    ]
}

/// Replays a HIS visit file through the settlement core (as service_visits.rs does); returns
/// the 2207 setlinfo.
pub async fn settle_outpatient(core: &Harness) -> Value {
    let text = std::fs::read_to_string(fixtures().join("his/outpatient-beijing-310.json")).unwrap();
    let steps: Vec<Value> = serde_json::from_str(&text).unwrap();
    let (mut mdtrt_id, mut sign_no) = (String::new(), String::new());
    let mut setlinfo = Value::Null;
    for step in steps {
        let text = step
            .to_string()
            .replace("${mdtrt_id}", &mdtrt_id)
            .replace("${sign_no}", &sign_no);
        let envelope: Value = serde_json::from_str(&text).unwrap();
        let infno = envelope["infno"].as_str().unwrap().to_owned();
        let output = core.ok(&envelope).await;
        if let Some(id) = output["data"]["mdtrt_id"]
            .as_str()
            .or(output["result"]["mdtrt_id"].as_str())
        {
            mdtrt_id = id.to_owned();
        }
        if let Some(no) = output["signinoutb"]["sign_no"].as_str() {
            sign_no = no.to_owned();
        }
        if infno == "2207" {
            setlinfo = output["setlinfo"].clone();
        }
    }
    setlinfo
}

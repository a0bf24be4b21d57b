//! Every fixture card through the whole real stack, which this test starts and stops itself:
//! its own pcscd with a vsmartcard-vpcd reader ([`common::pcscd`]) → `ssc-vcard` on the card
//! image → `terminal-agent serve` (the binary, its own process; 3.00 cards authenticated with
//! an in-process HSM key store holding the image's test keys) → its HTTP API. For each image:
//! the card view field by field, the masking, `iReadCardBas` field by field (ssc-card.md §6),
//! the bank application, and the APDUs per read at the fewest the card's files allow.
//!
//! Expected values come from the image read as plain TOML ([`common::expect`]), not through
//! card-core. Needs root for the private pcscd (scripts/check runs as root).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::agent_process::{AgentProcess, reader_url};
use common::pcscd::{PcscdHome, free_vpcd_port};
use common::{IMAGES, VirtualCardProcess, expect, hsm_for, image};
use serde_json::json;

const WAIT_MS: u64 = 15_000;
const TERMINAL_NO: &str = "T0042";
const DEVICE_NO: &str = "D0042";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_fixture_card_reads_through_the_agent_process_on_its_own_pcscd() {
    let home = PcscdHome::new();
    let port = free_vpcd_port();
    let pcscd = home.start(&[("Fixture PCD", port)]);
    let reader = "Fixture PCD 00 00";
    let empty = [(reader, false), ("Fixture PCD 00 01", false)];
    let with_card = [(reader, true), ("Fixture PCD 00 01", false)];
    for name in IMAGES {
        let t = image(name);
        // The agent's HSM: a key store with this image's SSC authentication masters (none for
        // a 2.00 card), opened by the agent under the same LMK.
        let (hsm_dir, hsm) = hsm_for(name);
        drop(hsm);
        let work = tempfile::tempdir().unwrap();
        let lmk_file = work.path().join("lmk.hex");
        std::fs::write(&lmk_file, "42".repeat(32)).unwrap();
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&lmk_file, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let config = work.path().join("agent.toml");
        std::fs::write(
            &config,
            format!(
                "terminal_no = \"{TERMINAL_NO}\"\ndevice_no = \"{DEVICE_NO}\"\n\
                 card_timeout_ms = 5000\nwatch_poll_ms = 100\ndata_dir = \"{}\"\n\
                 [hsm]\nmode = \"in-process\"\ndata_dir = \"{}\"\nlmk_file = \"{}\"\n",
                work.path().join("data").display(),
                hsm_dir.path().display(),
                lmk_file.display()
            ),
        )
        .unwrap();
        let agent = AgentProcess::start_args(
            &["--config", config.to_str().unwrap()],
            &[(
                "PCSCLITE_CSOCK_NAME",
                home.socket().to_str().unwrap().to_owned(),
            )],
            &work.path().join("agent.log"),
        )
        .await;
        agent.wait_readers(&empty, WAIT_MS).await;
        let mut card = VirtualCardProcess::start(name, port);
        agent.wait_readers(&with_card, WAIT_MS).await;

        let (status, view) = agent.get(&reader_url(reader, "/card?reveal=true")).await;
        assert_eq!(status, 200, "{name}: {view}\n{}", agent.log_text());
        expect::card_view_revealed(name, &t, &view);
        let (status, view) = agent.get(&reader_url(reader, "/card")).await;
        assert_eq!(status, 200, "{name}: {view}");
        expect::card_view_masked(name, &t, &view);

        let (status, reply) = agent
            .post("/v1/iReadCardBas", json!({"iType": 1, "reader": reader}))
            .await;
        assert_eq!((status, &reply["ret"]), (200, &json!(0)), "{name}: {reply}");
        expect::i_read_card_bas(
            name,
            &t,
            reply["out"].as_str().unwrap(),
            TERMINAL_NO,
            DEVICE_NO,
        );

        if t.contains_key("pboc") {
            let (status, bank) = agent.get(&reader_url(reader, "/bank")).await;
            assert_eq!(status, 200, "{name}: {bank}");
            expect::bank_view(name, &t, &bank, false);
            let (_, bank) = agent.get(&reader_url(reader, "/bank?reveal=true")).await;
            expect::bank_view(name, &t, &bank, true);
        }
        // No personal data in the agent's log, clear or otherwise.
        let log = agent.log_text();
        let mut secrets = vec![
            expect::full_name(&t),
            common::field(&t, "ssse", "ssn").to_owned(),
        ];
        if let Some(pboc) = t.get("pboc") {
            secrets.push(pboc["pan"].as_str().unwrap().to_owned());
        }
        for secret in secrets {
            assert!(!log.contains(&secret), "{name}: personal data in the log");
        }

        card.kill();
        agent.wait_readers(&empty, WAIT_MS).await;
        drop(agent);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    pcscd.stop();
}

//! The switch's inbound ISO 8583 interface for POS terminals: a good purchase answered with the
//! ARPC in field 55 (checked against hsm::emv computed on the card's side), and bad input — a
//! malformed message, a bitmap announcing fields that are not there, a wrong MAC — answered
//! with 30 / 30 / A0, nothing sent to the issuer, nothing posted, no PAN in the logs. Replies'
//! MACs are checked with the clear test key (hsm::mac primitives, the terminal's side).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod payments_support;

use std::sync::{Arc, Mutex};

use payments_support::{BANK_A_MAC_KEY, BANK_B_MAC_KEY, BankSim, MERCHANT, POS_TAK, TestCard};
use settlement::iso8583::{self, Message, Mti};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Everything logged in this test binary (INFO and up, the subscriber's default).
fn logs() -> String {
    payments_support::captured_logs(tracing::Level::INFO)
}

/// Packs `m` with the terminal's MAC (ISO 9797-1 alg 3, padding 1) computed in the clear.
fn with_mac(m: &mut Message) -> Vec<u8> {
    let key = hex::decode(POS_TAK).unwrap();
    let input = iso8583::mac_input(m).unwrap();
    let mac = hsm::mac::mac_alg3(&key, &input, hsm::mac::Padding::Method1).unwrap();
    let field = iso8583::mac_field(m);
    m.set(field, mac.to_vec());
    iso8583::pack(m).unwrap()
}

async fn exchange(stream: &mut TcpStream, body: &[u8]) -> Message {
    stream
        .write_all(&iso8583::frame(body).unwrap())
        .await
        .unwrap();
    let mut head = [0u8; 2];
    stream.read_exact(&mut head).await.unwrap();
    let mut reply = vec![0u8; usize::from(u16::from_be_bytes(head))];
    stream.read_exact(&mut reply).await.unwrap();
    let message = iso8583::unpack(&reply).unwrap();
    let (covered, mac) = iso8583::split_mac(&reply, &message).unwrap();
    let key = hex::decode(POS_TAK).unwrap();
    hsm::mac::verify_mac_alg3(&key, covered, hsm::mac::Padding::Method1, mac)
        .expect("the switch MACs its replies with the terminal key");
    message
}

fn purchase(card: &TestCard, amount: i64, atc: u16) -> Message {
    Message::new(Mti::FINANCIAL_REQUEST)
        .with(2, card.pan.clone().into_bytes())
        .with(3, *b"000000")
        .with(4, format!("{amount:012}").into_bytes())
        .with(7, *b"1130120000")
        .with(11, *b"000777")
        .with(22, *b"051")
        .with(23, *b"000")
        .with(41, *b"BJ000001")
        .with(42, MERCHANT.as_bytes().to_vec())
        .with(49, *b"156")
        .with(55, card.icc_data(amount, atc, false))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminals_speaking_8583_good_and_bad_input() {
    logs();
    let dir = tempfile::tempdir().unwrap();
    let (_hsm_dir, hsm) = payments_support::hsm();
    let sim_a = BankSim::start(dir.path().join("a.jsonl"), 0, BANK_A_MAC_KEY);
    let sim_b = BankSim::start(dir.path().join("b.jsonl"), 0, BANK_B_MAC_KEY);
    let switch = payments_support::switch(
        dir.path(),
        Arc::new(Mutex::new(hsm)),
        sim_a.port,
        sim_b.port,
        "bank-a-zak",
    )
    .await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(settlement::payments::acquirer::serve(
        listener,
        switch.clone(),
        "pos-tak".into(),
    ));
    let mut pos = TcpStream::connect(addr).await.unwrap();
    let card = TestCard::fixture("beijing-2g.toml");

    // A good purchase: 0210 / 00 with field 55 = 91 0A ARPC ‖ "00".
    let atc = card.atc + 1;
    let mut request = purchase(&card, 4_200, atc);
    let good = with_mac(&mut request);
    let reply = exchange(&mut pos, &good).await;
    assert_eq!(reply.mti, Mti::FINANCIAL_RESPONSE);
    assert_eq!(reply.text(39), Some("00"));
    assert_eq!(reply.text(4), Some("000000004200"));
    assert_eq!(reply.text(11), Some("000777"));
    let arqc = TestCard::arqc_of(&card.icc_data(4_200, atc, false));
    let arpc = hsm::emv::generate_arpc_method1(
        &card.session_key(atc),
        hsm::emv::CardAlgorithm::Tdes,
        &arqc,
        *b"00",
    )
    .unwrap();
    let mut tag91 = vec![0x91, 0x0A];
    tag91.extend_from_slice(&arpc);
    tag91.extend_from_slice(b"00");
    assert_eq!(reply.get(55), Some(tag91.as_slice()));

    // The bitmap announces fields 55 and 64, but the message stops after field 49.
    let cut = &good[..good.len() - 8 - 2 - request.get(55).unwrap().len()];
    let reply = exchange(&mut pos, cut).await;
    assert_eq!(
        (reply.mti, reply.text(39)),
        (Mti::FINANCIAL_RESPONSE, Some("30"))
    );
    // A valid MTI followed by garbage.
    let reply = exchange(&mut pos, &[0x02, 0x00, 0xFF, 0x13, 0x37]).await;
    assert_eq!(
        (reply.mti, reply.text(39)),
        (Mti::FINANCIAL_RESPONSE, Some("30"))
    );
    // A wrong MAC (last byte flipped).
    let mut bad_mac = good.clone();
    *bad_mac.last_mut().unwrap() ^= 0x01;
    let reply = exchange(&mut pos, &bad_mac).await;
    assert_eq!(reply.text(39), Some("A0"));
    assert_eq!(reply.text(11), Some("000777"));
    // An unreadable MTI gets no answer; the link stays usable (0800 echo).
    pos.write_all(&iso8583::frame(&[0xAB, 0xCD, 0x01]).unwrap())
        .await
        .unwrap();
    let mut echo = Message::new(Mti::NETWORK_REQUEST)
        .with(7, *b"1130120001")
        .with(11, *b"000778")
        .with(70, *b"301");
    let reply = exchange(&mut pos, &with_mac(&mut echo)).await;
    assert_eq!(
        (reply.mti, reply.text(39)),
        (Mti::NETWORK_RESPONSE, Some("00"))
    );

    // Only the good purchase reached the issuer and the ledger.
    let auths = sim_a
        .events()
        .into_iter()
        .filter(|e| e["kind"] == "auth")
        .count();
    assert_eq!(auths, 1);
    let day = settlement::payments::Moment::now().business_date();
    assert_eq!(switch.cut_off(&day).await.unwrap()[0].net_fen, 4_200);
    assert_eq!(switch.transactions(&day).await.unwrap().len(), 1);
    let logs = logs();
    assert!(logs.contains("malformed ISO 8583"), "refusals are logged");
    assert!(!logs.contains(&card.pan), "a PAN in clear reached the log");
    server.abort();
}

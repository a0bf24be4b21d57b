//! The switch's inbound ISO 8583 interface for POS terminals and acquirer hosts that speak
//! 8583 rather than the JSON API: 2-byte length frames over TCP, the same dialect
//! ([`crate::iso8583::spec`]), MAC (field 64/128) under the terminals' MAC key in the `hsm`.
//!
//! Every request gets an answer with an ISO 8583 response code, never silence, unless even the
//! MTI is unreadable:
//! - does not unpack (malformed, a bitmap announcing fields that are not there, bad BCD,
//!   trailing bytes) → the response MTI with 39 = `30` (format error);
//! - wrong or missing MAC → 39 = `A0`;
//! - 0200 purchase (processing code 000000; fields 2, 4, 11, 41, 42, 49, 55 required, 23
//!   optional) → [`Switch::purchase`]; the 0210 carries 39, 4 (approved amount), 37, 38 and,
//!   when there is an ARPC, field 55 = `91 0A <ARPC ‖ ARC>`;
//! - 0800 → 0810 / 00; any other MTI → 39 = `12`.
//!
//! Nothing is sent to an issuer or posted for a refused message; logs carry the error kind and
//! lengths, never field values.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::switch::{PurchaseRequest, Switch};
use super::{PaymentError, codes};
use crate::iso8583::{self, MESSAGE_LEN_MAX, Message, Mti};
use card_core::pboc::Pan;

/// Serves terminals on `listener` until the task is aborted; `mac_key` is the HSM alias of the
/// terminals' MAC key (M3).
pub async fn serve(listener: TcpListener, switch: Switch, mac_key: String) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let switch = switch.clone();
        let mac_key = mac_key.clone();
        tokio::spawn(async move {
            if let Err(e) = connection(stream, &switch, &mac_key).await {
                tracing::info!(error = %e, "acquirer connection closed");
            }
        });
    }
}

async fn connection(mut stream: TcpStream, switch: &Switch, mac_key: &str) -> std::io::Result<()> {
    let mut head = [0u8; 2];
    loop {
        stream.read_exact(&mut head).await?;
        let len = usize::from(u16::from_be_bytes(head));
        if len > MESSAGE_LEN_MAX {
            tracing::warn!(len, "acquirer frame longer than the maximum: closing");
            return Ok(());
        }
        let mut body = vec![0u8; len];
        stream.read_exact(&mut body).await?;
        match handle(switch, mac_key, &body).await {
            Ok(Some(reply)) => {
                let framed = iso8583::frame(&reply).map_err(std::io::Error::other)?;
                stream.write_all(&framed).await?;
            }
            Ok(None) => {}
            Err(e) => tracing::error!(error = %e, "acquirer request failed inside the switch"),
        }
    }
}

/// The answer to one packed request (`None`: not even the MTI is readable).
///
/// Errors: HSM, store or ledger faults.
pub async fn handle(
    switch: &Switch,
    mac_key: &str,
    body: &[u8],
) -> Result<Option<Vec<u8>>, PaymentError> {
    let request = match iso8583::unpack(body) {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(error = %e, len = body.len(), "malformed ISO 8583 from a terminal: 30");
            let Some(mti) = readable_response_mti(body) else {
                return Ok(None);
            };
            let mut reply = Message::new(mti).with(39, codes::FORMAT_ERROR.as_bytes().to_vec());
            return Ok(Some(switch.mac_and_pack_with(mac_key, &mut reply).await?));
        }
    };
    let Some(response_mti) = request.mti.response() else {
        return Ok(None);
    };
    let mut reply = Message::new(response_mti);
    for n in [3u8, 7, 11, 12, 13, 41, 42, 49] {
        if let Some(v) = request.get(n) {
            reply.set(n, v.to_vec());
        }
    }
    if !switch.mac_ok_with(mac_key, body, &request).await {
        tracing::warn!(
            terminal = request.text(41).unwrap_or("-"),
            "terminal MAC does not verify: A0"
        );
        reply.set(39, codes::MAC_FAILED.as_bytes().to_vec());
        return Ok(Some(switch.mac_and_pack_with(mac_key, &mut reply).await?));
    }
    let code = match request.mti {
        Mti::NETWORK_REQUEST => codes::APPROVED.to_owned(),
        Mti::FINANCIAL_REQUEST if request.get(3) == Some(b"000000".as_slice()) => {
            match purchase_request(&request) {
                Some(purchase) => {
                    let outcome = switch.purchase(&purchase).await?;
                    reply.set(4, format!("{:012}", outcome.approved_fen).into_bytes());
                    if !outcome.rrn.is_empty() {
                        reply.set(37, outcome.rrn.clone().into_bytes());
                    }
                    if let Some(auth) = &outcome.auth_code {
                        reply.set(38, auth.clone().into_bytes());
                    }
                    if let Some(arpc) = outcome.arpc {
                        let mut tlv = vec![0x91, 0x0A];
                        tlv.extend_from_slice(&arpc);
                        tlv.extend_from_slice(outcome.response_code.as_bytes());
                        reply.set(55, tlv);
                    }
                    outcome.response_code
                }
                None => {
                    tracing::warn!(
                        terminal = request.text(41).unwrap_or("-"),
                        "purchase lacks a mandatory field: 30"
                    );
                    codes::FORMAT_ERROR.to_owned()
                }
            }
        }
        _ => codes::INVALID_TRANSACTION.to_owned(),
    };
    reply.set(39, code.into_bytes());
    Ok(Some(switch.mac_and_pack_with(mac_key, &mut reply).await?))
}

/// The response MTI of a message whose first 2 bytes are a BCD request MTI.
fn readable_response_mti(body: &[u8]) -> Option<Mti> {
    let bytes = body.get(..2)?;
    let digits: Vec<u8> = bytes
        .iter()
        .flat_map(|b| [b >> 4, b & 0x0F])
        .map(|n| if n <= 9 { b'0' + n } else { b'?' })
        .collect();
    Mti::parse(&digits).ok()?.response()
}

fn purchase_request(m: &Message) -> Option<PurchaseRequest> {
    Some(PurchaseRequest {
        terminal_id: m.text(41)?.to_owned(),
        merchant_id: m.text(42)?.to_owned(),
        pan: Pan::new(m.text(2)?)?,
        psn: m.text(23).map_or(Some(0), |p| p.parse().ok())?,
        amount_fen: m.text(4)?.parse().ok()?,
        currency: m.text(49)?.to_owned(),
        icc_data: m.get(55)?.to_vec(),
    })
}

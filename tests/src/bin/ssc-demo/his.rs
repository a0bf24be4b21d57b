//! The hospital's HIS, as the demo plays it: national-interface envelopes
//! (medical-settlement.md §1.1) posted to the switch with the gateway's `x-tif-*` headers, whose
//! signature is computed here independently of the switch's own code (§1.0: lowercase hex
//! SHA-256 of timestamp + paasToken + nonce + timestamp).

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::web::Gateway;

/// The national interface's envelope path.
pub const CALL_SERVICE_PATH: &str = "/fsi/api/rsfComIfsService/callService";

/// One hospital's HIS connection to its region's node.
pub struct His {
    client: reqwest::blocking::Client,
    base_url: String,
    paas_id: String,
    paas_token: String,
    /// 定点医药机构编号 (12 characters).
    pub fixmedins_code: String,
    fixmedins_name: String,
    /// 就医地医保区划.
    pub mdtrtarea_admvs: String,
    sign_no: String,
    seq: AtomicU32,
}

impl His {
    /// A HIS of `fixmedins_code` posting to `base_url` as the gateway caller `gateway`.
    pub fn new(
        base_url: &str,
        gateway: &Gateway,
        fixmedins_code: &str,
        fixmedins_name: &str,
        mdtrtarea_admvs: &str,
    ) -> Result<Self> {
        Ok(Self {
            client: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()?,
            base_url: base_url.to_owned(),
            paas_id: gateway.paas_id.clone(),
            paas_token: gateway.token.clone(),
            fixmedins_code: fixmedins_code.to_owned(),
            fixmedins_name: fixmedins_name.to_owned(),
            mdtrtarea_admvs: mdtrtarea_admvs.to_owned(),
            sign_no: String::new(),
            seq: AtomicU32::new(0),
        })
    }

    /// 9001 sign-in; keeps the `sign_no` for later envelopes.
    pub fn sign_in(&mut self) -> Result<()> {
        let out = self.call(
            "9001",
            &self.mdtrtarea_admvs.clone(),
            json!({"signIn": {"opter_no": "OP001", "mac": "00-00-00-00-00-01", "ip": "127.0.0.1"}}),
        )?;
        self.sign_no = out["signinoutb"]["sign_no"]
            .as_str()
            .context("9001 output has no signinoutb.sign_no")?
            .to_owned();
        Ok(())
    }

    /// Posts one envelope and returns its `output`, or fails with the switch's `err_msg`.
    pub fn call(&self, infno: &str, insuplc_admdvs: &str, input: Value) -> Result<Value> {
        self.send(infno, insuplc_admdvs, input, None).1
    }

    /// Posts one envelope (to `via` instead of the node when given: a relay) and returns its
    /// msgid with the `output` or the failure.
    pub fn send(
        &self,
        infno: &str,
        insuplc_admdvs: &str,
        input: Value,
        via: Option<&str>,
    ) -> (String, Result<Value>) {
        let msgid = self.next_msgid();
        let result = self.post(infno, &msgid, insuplc_admdvs, input, via);
        (msgid, result)
    }

    fn next_msgid(&self) -> String {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed) % 10_000;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        format!(
            "{}{}{seq:04}",
            self.fixmedins_code,
            shanghai_compact(now.as_secs())
        )
    }

    fn post(
        &self,
        infno: &str,
        msgid: &str,
        insuplc_admdvs: &str,
        input: Value,
        via: Option<&str>,
    ) -> Result<Value> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH)?;
        let seq = self.seq.load(Ordering::Relaxed);
        let envelope = json!({
            "infno": infno,
            "msgid": msgid,
            "mdtrtarea_admvs": self.mdtrtarea_admvs,
            "insuplc_admdvs": insuplc_admdvs,
            "recer_sys_code": "HIS",
            "infver": "V1.0",
            "opter_type": "1",
            "opter": "OP001",
            "opter_name": "收费员",
            "inf_time": shanghai_display(now.as_secs()),
            "fixmedins_code": self.fixmedins_code,
            "fixmedins_name": self.fixmedins_name,
            "sign_no": self.sign_no,
            "input": input,
        });
        let timestamp = now.as_secs().to_string();
        let nonce = format!("{:08x}{seq:04}", now.subsec_nanos());
        let signature = hex::encode(Sha256::digest(
            format!("{timestamp}{}{nonce}{timestamp}", self.paas_token).as_bytes(),
        ));
        let url = format!("{}{CALL_SERVICE_PATH}", via.unwrap_or(&self.base_url));
        let reply: Value = self
            .client
            .post(url)
            .header("x-tif-paasid", &self.paas_id)
            .header("x-tif-timestamp", &timestamp)
            .header("x-tif-nonce", &nonce)
            .header("x-tif-signature", signature)
            .json(&envelope)
            .send()
            .with_context(|| format!("sending {infno}"))?
            .json()
            .with_context(|| format!("reading the {infno} reply"))?;
        if reply["infcode"].as_i64() != Some(0) && reply["infcode"].as_str() != Some("0") {
            bail!(
                "{infno} refused: {} ({})",
                reply["err_msg"].as_str().unwrap_or("no err_msg"),
                reply["err_code"].as_str().unwrap_or("no err_code")
            );
        }
        Ok(reply["output"].clone())
    }
}

/// `yyyyMMddHHmmss` in Asia/Shanghai (UTC+8, no daylight saving) for `unix_secs`.
fn shanghai_compact(unix_secs: u64) -> String {
    let (y, mo, d, h, mi, s) = shanghai_fields(unix_secs);
    format!("{y:04}{mo:02}{d:02}{h:02}{mi:02}{s:02}")
}

/// `yyyy-MM-dd HH:mm:ss` in Asia/Shanghai for `unix_secs`.
pub fn shanghai_display(unix_secs: u64) -> String {
    let (y, mo, d, h, mi, s) = shanghai_fields(unix_secs);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}")
}

fn shanghai_fields(unix_secs: u64) -> (u64, u64, u64, u64, u64, u64) {
    let local = unix_secs + 8 * 3600;
    let days = local / 86_400;
    let rem = local % 86_400;
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d, rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shanghai_time_is_utc_plus_8() {
        // 2026-11-30 00:00:00 UTC = 1_795_996_800 (date -u -d 2026-11-30 +%s).
        assert_eq!(shanghai_display(1_795_996_800), "2026-11-30 08:00:00");
        // 2024-02-29 16:30:00 UTC (a leap day) = 1_709_224_200 → 2024-03-01 00:30 in Shanghai.
        assert_eq!(shanghai_compact(1_709_224_200), "20240301003000");
    }
}

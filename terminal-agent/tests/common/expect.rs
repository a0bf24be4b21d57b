//! What the agent must answer for a fixture card, computed here from the card image read as
//! plain TOML (never through card-core) and from ssc-card.md: the card view field by field,
//! the masking, `iReadCardBas` field by field (§6), the bank application, and the fewest APDUs
//! a read can take (§3).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::Value;

use super::{field, historical_hex};

/// `text` with every character but the first `head` and the last `tail` replaced by `*`.
pub fn masked(text: &str, head: usize, tail: usize) -> String {
    let chars: Vec<char> = text.chars().collect();
    let n = chars.len();
    chars
        .iter()
        .enumerate()
        .map(|(i, c)| if i < head || i + tail >= n { *c } else { '*' })
        .collect()
}

/// The full name on the card: 姓名 followed by 姓名扩展 (ssc-card.md §3).
pub fn full_name(t: &toml::Table) -> String {
    format!(
        "{}{}",
        field(t, "ssse", "name"),
        t["ssse"]
            .get("name_ext")
            .and_then(|v| v.as_str())
            .unwrap_or("")
    )
}

/// ssc-card.md §3: EF05 holds 7 items (tags 01-07) on every generation; EF06 holds 7 on a
/// 2.00/3.00 card (08, 09, 4E, 0A-0D; 4E 姓名扩展 even when empty) and 3 on a 1.00 card (08, 09,
/// 0A). One READ RECORD each.
fn records(spec_version: &str) -> (u64, u64) {
    if spec_version.starts_with('1') {
        (7, 3)
    } else {
        (7, 7)
    }
}

/// The fewest APDUs that read EF05 and EF06 of the card `t`: SELECT SSSE, SELECT EF05, one READ
/// RECORD per EF05 item, SELECT EF06 (same DF: SSSE is not selected again), one READ RECORD
/// per EF06 item; a 3.00 card adds INTERNAL AUTHENTICATE, GET CHALLENGE and EXTERNAL
/// AUTHENTICATE (§4-§5). A strict T=0 card (`t0_get_response`) answers the two case-4 commands
/// that return data (SELECT SSSE with its FCI, INTERNAL AUTHENTICATE) with 61XX: one GET
/// RESPONSE each; the EF selects return no data.
pub fn fewest_apdus(t: &toml::Table) -> u64 {
    let spec = field(t, "ssse", "spec_version");
    let (ef05, ef06) = records(spec);
    let third = spec.starts_with('3');
    let strict = t
        .get("t0_get_response")
        .and_then(|v| v.as_bool())
        .unwrap_or(false);
    let mut n = 1 + 1 + ef05 + 1 + ef06;
    if third {
        n += 3;
    }
    if strict {
        n += 1 + u64::from(third);
    }
    n
}

/// Checks `view` (`GET /v1/readers/{name}/card?reveal=true`) against the image `t`.
pub fn card_view_revealed(name: &str, t: &toml::Table, view: &Value) {
    let id = &view["identity"];
    let card_id = field(t, "ssse", "card_id");
    assert_eq!(id["card_id"], card_id, "{name}");
    assert_eq!(id["region_code"], &card_id[..6], "{name}");
    assert_eq!(id["card_type"], field(t, "ssse", "card_type"), "{name}");
    assert_eq!(
        id["spec_version"],
        field(t, "ssse", "spec_version"),
        "{name}"
    );
    assert_eq!(id["issuing_org"], field(t, "ssse", "init_org"), "{name}");
    assert_eq!(id["issue_date"], field(t, "ssse", "issue_date"), "{name}");
    assert_eq!(id["expiry_date"], field(t, "ssse", "expiry_date"), "{name}");
    assert_eq!(id["card_number"], field(t, "ssse", "card_no"), "{name}");
    let holder = &view["holder"];
    assert_eq!(holder["ssn"], field(t, "ssse", "ssn"), "{name}");
    assert_eq!(holder["name"], full_name(t), "{name}");
    assert_eq!(holder["sex"], field(t, "ssse", "sex"), "{name}");
    let ethnicity: u64 = field(t, "ssse", "ethnicity").parse().unwrap();
    assert_eq!(holder["ethnicity"], ethnicity, "{name}");
    assert_eq!(
        holder["birthplace"],
        field(t, "ssse", "birthplace"),
        "{name}"
    );
    assert_eq!(
        holder["birth_date"],
        field(t, "ssse", "birth_date"),
        "{name}"
    );
    let third = field(t, "ssse", "spec_version").starts_with('3');
    assert_eq!(view["card_authenticated"], third, "{name}");
    assert_eq!(view["apdus"], fewest_apdus(t), "{name}: APDUs per read");
}

/// Checks the masked view (`GET /v1/readers/{name}/card`): ID number 6+4, name first
/// character, birth date year only.
pub fn card_view_masked(name: &str, t: &toml::Table, view: &Value) {
    assert_eq!(
        view["holder"]["ssn"],
        masked(field(t, "ssse", "ssn"), 6, 4),
        "{name}"
    );
    assert_eq!(
        view["holder"]["name"],
        masked(&full_name(t), 1, 0),
        "{name}"
    );
    assert_eq!(
        view["holder"]["birth_date"],
        masked(field(t, "ssse", "birth_date"), 4, 0),
        "{name}"
    );
    let text = view.to_string();
    assert!(
        !text.contains(field(t, "ssse", "ssn")),
        "{name}: clear ID number"
    );
}

/// Checks `iReadCardBas` output field by field (ssc-card.md §6): 11 items, each followed by
/// `|`, with the terminal's numbers `terminal_no` and `device_no`.
pub fn i_read_card_bas(name: &str, t: &toml::Table, out: &str, terminal_no: &str, device_no: &str) {
    let card_id = field(t, "ssse", "card_id");
    let fields: Vec<&str> = out.split('|').collect();
    assert_eq!(
        fields.len(),
        12,
        "{name}: 11 fields, each followed by |: {out}"
    );
    assert_eq!(fields[0], &card_id[..6], "{name} 发卡地区行政区划代码");
    assert_eq!(fields[1], field(t, "ssse", "ssn"), "{name} 社会保障号码");
    assert_eq!(fields[2], field(t, "ssse", "card_no"), "{name} 卡号");
    assert_eq!(fields[3], card_id, "{name} 卡识别码");
    assert_eq!(fields[4], full_name(t), "{name} 姓名");
    assert_eq!(fields[5], historical_hex(t), "{name} 卡复位信息");
    assert_eq!(
        fields[6],
        field(t, "ssse", "spec_version"),
        "{name} 规范版本"
    );
    assert_eq!(fields[7], field(t, "ssse", "issue_date"), "{name} 发卡日期");
    assert_eq!(
        fields[8],
        field(t, "ssse", "expiry_date"),
        "{name} 卡有效期"
    );
    assert_eq!(fields[9], terminal_no, "{name} 终端机编号");
    assert_eq!(fields[10], device_no, "{name} 终端设备号");
    assert_eq!(fields[11], "", "{name}: the output ends with |");
}

/// Checks the bank view (`GET /v1/readers/{name}/bank`, `reveal` or not) against `[pboc]`.
pub fn bank_view(name: &str, t: &toml::Table, view: &Value, revealed: bool) {
    let pboc = &t["pboc"];
    let pan = pboc["pan"].as_str().unwrap();
    let want = if revealed {
        pan.to_owned()
    } else {
        masked(pan, 6, 4)
    };
    assert_eq!(view["pan"], want, "{name}");
    assert_eq!(view["aid"], pboc["aid"].as_str().unwrap(), "{name}");
    assert_eq!(
        view["expiry_date"],
        pboc["expiry_date"].as_str().unwrap(),
        "{name}"
    );
}

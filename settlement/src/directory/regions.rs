//! Names of the province-level divisions (GB/T 2260 codes `xx0000`), so a use live in `120000`
//! is found by searching 天津 and the page can show names. Cities and counties are shown by
//! their province's name plus the code (the full GB/T 2260 table is not shipped).
//!
//! Source: GB/T 2260 中华人民共和国行政区划代码, province-level rows (also the first two digits of
//! the 6-digit `admdvs` in medical-settlement.md).

use super::model::Region;

/// (code, name) of the 31 province-level divisions of the mainland.
pub const PROVINCES: &[(u32, &str)] = &[
    (110000, "北京市"),
    (120000, "天津市"),
    (130000, "河北省"),
    (140000, "山西省"),
    (150000, "内蒙古自治区"),
    (210000, "辽宁省"),
    (220000, "吉林省"),
    (230000, "黑龙江省"),
    (310000, "上海市"),
    (320000, "江苏省"),
    (330000, "浙江省"),
    (340000, "安徽省"),
    (350000, "福建省"),
    (360000, "江西省"),
    (370000, "山东省"),
    (410000, "河南省"),
    (420000, "湖北省"),
    (430000, "湖南省"),
    (440000, "广东省"),
    (450000, "广西壮族自治区"),
    (460000, "海南省"),
    (500000, "重庆市"),
    (510000, "四川省"),
    (520000, "贵州省"),
    (530000, "云南省"),
    (540000, "西藏自治区"),
    (610000, "陕西省"),
    (620000, "甘肃省"),
    (630000, "青海省"),
    (640000, "宁夏回族自治区"),
    (650000, "新疆维吾尔自治区"),
];

/// The label shown for a region: 全国, a province's name, or the province's name and the code
/// for a city or county (`天津市 120101`), or the bare code for an unknown province.
pub fn region_label(region: Region) -> String {
    match region {
        Region::National => "全国".to_owned(),
        Region::Division(admdvs) => {
            let code = admdvs.code();
            let province = PROVINCES
                .iter()
                .find(|(province, _)| *province == code / 10_000 * 10_000)
                .map(|(_, name)| *name);
            match province {
                Some(name) if code % 10_000 == 0 => name.to_owned(),
                Some(name) => format!("{name} {admdvs}"),
                None => admdvs.to_string(),
            }
        }
    }
}

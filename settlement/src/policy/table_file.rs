//! The policy file's TOML shape and its validation into [`super::table`] types (a missing or
//! unordered segment, a ratio outside 0..=1, a bad amount, overlapping rules are refused).

use rust_decimal::Decimal;
use serde::Deserialize;

use super::PolicyError;
use super::table::{
    DeductibleScope, Grade, Graded, POLICY_RULES_MAX, RegionPolicy, Rule, SEGMENTS_MAX, Segment,
    SegmentBasis, Tier, TierBasis,
};
use super::types::{HospLv, Insutype, PsnType, Setting};
use crate::{Admdvs, Fen, FundPayType};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRegion {
    admdvs: String,
    name: String,
    year: u32,
    unfiled_ratio_cut: RawValue<String>,
    pharmacy_pooled_fund: RawValue<bool>,
    #[serde(default)]
    rule: Vec<RawRule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawValue<T> {
    value: T,
    grade: Grade,
    source: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawYuan {
    yuan: String,
    grade: Grade,
    source: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSegment {
    upto_yuan: Option<String>,
    ratio: String,
    grade: Grade,
    source: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTier {
    fund_pay_type: String,
    basis: String,
    deductible: RawYuan,
    annual_cap: Option<RawYuan>,
    #[serde(default)]
    segment: Vec<RawSegment>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    insutype: String,
    psn_type: Vec<String>,
    setting: String,
    hosp_lv: Vec<String>,
    age_min_years: Option<u32>,
    age_below_years: Option<u32>,
    fund_pay_type: String,
    acct_allowed: bool,
    deductible_scope: String,
    deductible_first: RawYuan,
    deductible_later: Option<RawYuan>,
    segment_basis: String,
    annual_cap: Option<RawYuan>,
    #[serde(default)]
    segment: Vec<RawSegment>,
    tier: Option<RawTier>,
}

impl RawRegion {
    pub(super) fn validate(self, shown: &str) -> Result<RegionPolicy, PolicyError> {
        let bad = |rule: usize, reason: String| PolicyError::BadTable {
            path: shown.to_owned(),
            rule,
            reason,
        };
        let admdvs = Admdvs::parse(&self.admdvs).map_err(|e| bad(0, e.to_string()))?;
        let cut = ratio(&self.unfiled_ratio_cut.value)
            .map_err(|r| bad(0, format!("unfiled_ratio_cut: {r}")))?;
        if self.rule.len() > POLICY_RULES_MAX {
            return Err(bad(0, format!("more than {POLICY_RULES_MAX} rules")));
        }
        let mut rules: Vec<Rule> = Vec::with_capacity(self.rule.len());
        for (index, raw) in self.rule.into_iter().enumerate() {
            let number = index + 1;
            let rule = raw.validate().map_err(|r| bad(number, r))?;
            if let Some(other) = rules.iter().position(|r| r.overlaps(&rule)) {
                return Err(bad(number, format!("overlaps rule {}", other + 1)));
            }
            rules.push(rule);
        }
        Ok(RegionPolicy {
            admdvs,
            name: self.name,
            year: self.year,
            unfiled_ratio_cut: Graded {
                value: cut,
                grade: self.unfiled_ratio_cut.grade,
                source: self.unfiled_ratio_cut.source,
            },
            pharmacy_pooled_fund: Graded {
                value: self.pharmacy_pooled_fund.value,
                grade: self.pharmacy_pooled_fund.grade,
                source: self.pharmacy_pooled_fund.source,
            },
            rules,
        })
    }
}

impl RawRule {
    fn validate(self) -> Result<Rule, String> {
        let insutype = Insutype::parse(&self.insutype).map_err(|e| e.to_string())?;
        let psn_types = self
            .psn_type
            .iter()
            .map(|p| PsnType::parse(p).map_err(|e| e.to_string()))
            .collect::<Result<Vec<_>, _>>()?;
        let setting = match self.setting.as_str() {
            "outpatient" => Setting::Outpatient,
            "inpatient" => Setting::Inpatient,
            other => return Err(format!("setting {other:?} is not outpatient/inpatient")),
        };
        let hosp_lvs = self
            .hosp_lv
            .iter()
            .map(|h| HospLv::parse(h).map_err(|e| e.to_string()))
            .collect::<Result<Vec<_>, _>>()?;
        if psn_types.is_empty() || hosp_lvs.is_empty() {
            return Err("psn_type and hosp_lv must list at least one value".to_owned());
        }
        let deductible_scope = match self.deductible_scope.as_str() {
            "annual" => DeductibleScope::Annual,
            "per_admission" => DeductibleScope::PerAdmission,
            other => {
                return Err(format!(
                    "deductible_scope {other:?} is not annual/per_admission"
                ));
            }
        };
        let segment_basis = match self.segment_basis.as_str() {
            "bill" => SegmentBasis::Bill,
            "year" => SegmentBasis::Year,
            other => return Err(format!("segment_basis {other:?} is not bill/year")),
        };
        let tier = self.tier.map(RawTier::validate).transpose()?;
        Ok(Rule {
            insutype,
            psn_types,
            setting,
            hosp_lvs,
            age_min_years: self.age_min_years,
            age_below_years: self.age_below_years,
            fund_pay_type: FundPayType::parse(&self.fund_pay_type).map_err(|e| e.to_string())?,
            acct_allowed: self.acct_allowed,
            deductible_scope,
            deductible_first: yuan("deductible_first", self.deductible_first)?,
            deductible_later: self
                .deductible_later
                .map(|d| yuan("deductible_later", d))
                .transpose()?,
            segment_basis,
            segments: segments("segment", self.segment)?,
            annual_cap: self.annual_cap.map(|c| yuan("annual_cap", c)).transpose()?,
            tier,
        })
    }
}

impl RawTier {
    fn validate(self) -> Result<Tier, String> {
        let basis = match self.basis.as_str() {
            "beyond_basic_cap" => TierBasis::BeyondBasicCap,
            "personal_inscp_year" => TierBasis::PersonalInscpYear,
            other => {
                return Err(format!(
                    "tier basis {other:?} is not beyond_basic_cap/personal_inscp_year"
                ));
            }
        };
        Ok(Tier {
            fund_pay_type: FundPayType::parse(&self.fund_pay_type).map_err(|e| e.to_string())?,
            basis,
            deductible: yuan("tier.deductible", self.deductible)?,
            segments: segments("tier.segment", self.segment)?,
            annual_cap: self
                .annual_cap
                .map(|c| yuan("tier.annual_cap", c))
                .transpose()?,
        })
    }
}

fn ratio(text: &str) -> Result<Decimal, String> {
    let value =
        Decimal::from_str_exact(text).map_err(|_| format!("ratio {text:?} is not a decimal"))?;
    if value < Decimal::ZERO || value > Decimal::ONE {
        return Err(format!("ratio {text} is outside 0..=1"));
    }
    Ok(value)
}

fn yuan(field: &str, raw: RawYuan) -> Result<Graded<Fen>, String> {
    let value = raw
        .yuan
        .parse::<Fen>()
        .map_err(|e| format!("{field} {:?}: {e}", raw.yuan))?;
    Ok(Graded {
        value,
        grade: raw.grade,
        source: raw.source,
    })
}

/// Checks the bands: at least one, strictly ascending bounds, only the last one open-ended.
fn segments(field: &str, raw: Vec<RawSegment>) -> Result<Vec<Segment>, String> {
    if raw.is_empty() {
        return Err(format!(
            "{field}: no segment (at least one band is required)"
        ));
    }
    if raw.len() > SEGMENTS_MAX {
        return Err(format!("{field}: more than {SEGMENTS_MAX} segments"));
    }
    let count = raw.len();
    let mut out = Vec::with_capacity(count);
    let mut previous = Fen::ZERO;
    for (index, seg) in raw.into_iter().enumerate() {
        let number = index + 1;
        let upto = seg
            .upto_yuan
            .as_deref()
            .map(|t| {
                t.parse::<Fen>()
                    .map_err(|e| format!("{field} {number}: upto_yuan {t:?}: {e}"))
            })
            .transpose()?;
        match upto {
            Some(bound) if bound <= previous => {
                return Err(format!(
                    "{field} {number}: upto_yuan {bound} does not rise above the previous bound {previous}"
                ));
            }
            Some(bound) => previous = bound,
            None if number < count => {
                return Err(format!(
                    "{field} {number}: only the last segment may omit upto_yuan"
                ));
            }
            None => {}
        }
        if number == count && upto.is_some() {
            return Err(format!(
                "{field}: missing segment above {previous} (the last segment must omit upto_yuan)"
            ));
        }
        out.push(Segment {
            upto,
            ratio: Graded {
                value: ratio(&seg.ratio).map_err(|r| format!("{field} {number}: {r}"))?,
                grade: seg.grade,
                source: seg.source,
            },
        });
    }
    Ok(out)
}

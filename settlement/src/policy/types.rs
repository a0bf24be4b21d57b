//! Inputs of the engine: who (insurance type, person type, age), where (setting, hospital level,
//! cross-region status), what (classified lines) and the year so far (accumulators, 5206).

use super::PolicyError;
use crate::Fen;
use crate::catalogue::ClassifiedLine;

/// 险种类型 `insutype` (medical-settlement.md §1.2: 310 职工基本医疗保险 grade A, 390 城乡居民 grade B).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Insutype {
    /// `310` 职工基本医疗保险 (employees).
    Employee,
    /// `390` 城乡居民基本医疗保险 (residents).
    Resident,
}

impl Insutype {
    /// Parses `"310"` or `"390"`. Errors: `UnknownInsutype`.
    pub fn parse(code: &str) -> Result<Insutype, PolicyError> {
        match code {
            "310" => Ok(Insutype::Employee),
            "390" => Ok(Insutype::Resident),
            other => Err(PolicyError::UnknownInsutype(truncate(other))),
        }
    }

    /// `"310"` or `"390"`.
    pub fn code(self) -> &'static str {
        match self {
            Insutype::Employee => "310",
            Insutype::Resident => "390",
        }
    }
}

/// Person type for the tables: in service (在职) or retired (退休). Residents use `InService` rows
/// marked `all` in policy-params.csv (the tables list both person types on resident rules).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PsnType {
    /// 在职.
    InService,
    /// 退休.
    Retired,
}

impl PsnType {
    /// Parses `in_service`/`retired`, or the interface codes `11`/`21` (grade C: 11 appears on an
    /// employee sample in medical-settlement.md §5.1; 21 for retirees is recollection). Errors:
    /// `UnknownPsnType`.
    pub fn parse(text: &str) -> Result<PsnType, PolicyError> {
        match text {
            "in_service" | "11" => Ok(PsnType::InService),
            "retired" | "21" => Ok(PsnType::Retired),
            other => Err(PolicyError::UnknownPsnType(truncate(other))),
        }
    }

    /// `"in_service"` or `"retired"`.
    pub fn name(self) -> &'static str {
        match self {
            PsnType::InService => "in_service",
            PsnType::Retired => "retired",
        }
    }

    /// The interface code `psn_type` (`11` in service, `21` retired; grade C, see `parse`).
    pub fn code(self) -> &'static str {
        match self {
            PsnType::InService => "11",
            PsnType::Retired => "21",
        }
    }
}

/// Outpatient (门诊, 2201–2208) or inpatient (住院, 2401/2301–2305).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Setting {
    /// 门诊.
    Outpatient,
    /// 住院.
    Inpatient,
}

impl Setting {
    /// `"outpatient"` or `"inpatient"`.
    pub fn name(self) -> &'static str {
        match self {
            Setting::Outpatient => "outpatient",
            Setting::Inpatient => "inpatient",
        }
    }
}

/// Hospital level as the tables distinguish it (policy-params.csv `hospital_level`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HospLv {
    /// 社区卫生服务机构 / 乡镇卫生院.
    Community,
    /// 一级.
    Level1,
    /// 二级.
    Level2,
    /// 三级 (municipal or unspecified).
    Level3,
    /// 省属三级 (石家庄's tables distinguish it).
    Level3Provincial,
    /// 定点零售药店 (pharmacy); see `RegionPolicy::pharmacy_pooled_fund`.
    Pharmacy,
}

impl HospLv {
    /// Parses `community`, `level1`, `level2`, `level3`, `level3_provincial`, `pharmacy`. Errors:
    /// `UnknownHospLv`.
    pub fn parse(text: &str) -> Result<HospLv, PolicyError> {
        match text {
            "community" => Ok(HospLv::Community),
            "level1" => Ok(HospLv::Level1),
            "level2" => Ok(HospLv::Level2),
            "level3" => Ok(HospLv::Level3),
            "level3_provincial" => Ok(HospLv::Level3Provincial),
            "pharmacy" => Ok(HospLv::Pharmacy),
            other => Err(PolicyError::UnknownHospLv(truncate(other))),
        }
    }

    /// The name `parse` accepts.
    pub fn name(self) -> &'static str {
        match self {
            HospLv::Community => "community",
            HospLv::Level1 => "level1",
            HospLv::Level2 => "level2",
            HospLv::Level3 => "level3",
            HospLv::Level3Provincial => "level3_provincial",
            HospLv::Pharmacy => "pharmacy",
        }
    }
}

/// Which admission of the year this is (inpatient deductible: Beijing 1300 first / 650 later, B).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AdmissionOrdinal {
    /// First admission of the year (also used for outpatient).
    First,
    /// Second or later admission of the year.
    SecondOrLater,
}

/// Cross-region status when the insured region (参保地) differs from the treating region (就医地),
/// medical-settlement.md §3. Emergency counts as filed (急诊抢救 视同已备案, B); 京津冀 视同备案 is
/// filed (C, see [`super::jingjinji_deemed_filed`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CrossRegion {
    /// 已备案 (filed), or deemed filed.
    pub filed: bool,
    /// 急诊抢救 (emergency).
    pub emergency: bool,
}

/// Year-to-date figures of one setting (5206 人员累计信息), all in fen, all only growing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SettingAccumulators {
    /// Deductible (起付线) charged so far this year.
    pub deductible_used: Fen,
    /// In-scope cost (`inscp_scp_amt`) settled so far (the segment basis of `SegmentBasis::Year`).
    pub inscp_sum: Fen,
    /// Basic fund (310100/390100) paid so far (the basic annual cap counts this).
    pub hifp_paid: Fen,
    /// 职工大额 (330100) paid so far.
    pub hifob_paid: Fen,
    /// 居民大病 (390200) paid so far.
    pub hifmi_paid: Fen,
    /// In-scope personal share after the basic fund (`inscp − hifp`), summed: the basis of
    /// `TierBasis::PersonalInscpYear` (大病).
    pub psn_inscp_share_sum: Fen,
}

/// Year-to-date accumulators per setting. Assumption (C): deductibles, caps and tier bases are
/// counted per setting; no source says how Beijing/Tianjin/Shijiazhuang share them across settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct YearAccumulators {
    /// 门诊.
    pub outpatient: SettingAccumulators,
    /// 住院.
    pub inpatient: SettingAccumulators,
}

impl YearAccumulators {
    /// The figures of one setting.
    pub fn setting(&self, setting: Setting) -> &SettingAccumulators {
        match setting {
            Setting::Outpatient => &self.outpatient,
            Setting::Inpatient => &self.inpatient,
        }
    }

    /// `self + delta`, field by field (apply a split's `accumulators_delta`). Errors: `Overflow`.
    pub fn checked_add(&self, delta: &YearAccumulators) -> Result<YearAccumulators, PolicyError> {
        Ok(YearAccumulators {
            outpatient: combine(&self.outpatient, &delta.outpatient, i64::checked_add)?,
            inpatient: combine(&self.inpatient, &delta.inpatient, i64::checked_add)?,
        })
    }

    /// `self − delta`, field by field (revert a cancelled settlement, 2208/2305/2601). Errors:
    /// `AccumulatorUnderflow` if a field would go below zero.
    pub fn checked_sub(&self, delta: &YearAccumulators) -> Result<YearAccumulators, PolicyError> {
        let sub = |a: i64, b: i64| a.checked_sub(b).filter(|v| *v >= 0);
        Ok(YearAccumulators {
            outpatient: combine(&self.outpatient, &delta.outpatient, sub)
                .map_err(|_| PolicyError::AccumulatorUnderflow("outpatient"))?,
            inpatient: combine(&self.inpatient, &delta.inpatient, sub)
                .map_err(|_| PolicyError::AccumulatorUnderflow("inpatient"))?,
        })
    }
}

fn combine(
    a: &SettingAccumulators,
    b: &SettingAccumulators,
    op: impl Fn(i64, i64) -> Option<i64>,
) -> Result<SettingAccumulators, PolicyError> {
    let f = |x: Fen, y: Fen| {
        op(x.fen(), y.fen())
            .and_then(|v| Fen::from_fen(v).ok())
            .ok_or(PolicyError::Overflow("accumulators"))
    };
    Ok(SettingAccumulators {
        deductible_used: f(a.deductible_used, b.deductible_used)?,
        inscp_sum: f(a.inscp_sum, b.inscp_sum)?,
        hifp_paid: f(a.hifp_paid, b.hifp_paid)?,
        hifob_paid: f(a.hifob_paid, b.hifob_paid)?,
        hifmi_paid: f(a.hifmi_paid, b.hifmi_paid)?,
        psn_inscp_share_sum: f(a.psn_inscp_share_sum, b.psn_inscp_share_sum)?,
    })
}

/// Everything the engine needs for one settlement. Cross-region: `lines` were classified with the
/// TREATING region's catalogue, and the policy passed to `compute_split` is the INSURED region's
/// (medical-settlement.md §3.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitInput {
    /// 310 / 390.
    pub insutype: Insutype,
    /// In service / retired.
    pub psn_type: PsnType,
    /// Age in whole years on the settlement date (石家庄 outpatient caps by age, 天津 retiree
    /// deductible at ≥70: policy-params.csv, C).
    pub age_years: u32,
    /// Outpatient / inpatient.
    pub setting: Setting,
    /// The treating institution's level.
    pub hosp_lv: HospLv,
    /// First or later admission this year (inpatient; ignored for outpatient).
    pub admission_ordinal: AdmissionOrdinal,
    /// The bill's classified lines (refund lines subtract), at most `SPLIT_LINES_MAX`.
    pub lines: Vec<ClassifiedLine>,
    /// Year-to-date figures before this settlement.
    pub accumulators: YearAccumulators,
    /// `acct_used_flag` = 1: the personal account pays the personal share as far as it can.
    pub acct_used_flag: bool,
    /// Personal-account balance before this settlement.
    pub acct_balance: Fen,
    /// `None` for local care; `Some` when 参保地 ≠ 就医地.
    pub cross_region: Option<CrossRegion>,
}

fn truncate(text: &str) -> String {
    text.chars().take(16).collect()
}

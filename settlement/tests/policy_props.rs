//! Property tests of the policy engine over random bills, persons and accumulators on the fixture
//! tables of all three regions: the interface's identities (medical-settlement.md §1.4) hold on
//! every split, fund payments never exceed the in-scope amount or the remaining caps, the account
//! never pays more than its balance, accumulators only grow, and refunds are netted.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod policy_common;

use policy_common::*;
use proptest::prelude::*;
use settlement::Fen;
use settlement::catalogue::LineSign;
use settlement::policy::{
    AdmissionOrdinal, CrossRegion, HospLv, Insutype, PolicyError, PsnType, Setting,
    SettingAccumulators, compute_split,
};

fn accum() -> impl Strategy<Value = SettingAccumulators> {
    (
        0i64..300_000,
        0i64..100_000_000,
        0i64..40_000_000,
        0i64..5_000_000,
        0i64..40_000_000,
        0i64..5_000_000,
    )
        .prop_map(|(d, i, h, o, m, s)| SettingAccumulators {
            deductible_used: fen(d),
            inscp_sum: fen(i),
            hifp_paid: fen(h),
            hifob_paid: fen(o),
            hifmi_paid: fen(m),
            psn_inscp_share_sum: fen(s),
        })
}

fn lines() -> impl Strategy<Value = Vec<(i64, i64, i64, i64, bool)>> {
    proptest::collection::vec(
        (
            0i64..500_000,
            0i64..100_000,
            0i64..200_000,
            0i64..5_000_000,
            proptest::bool::weighted(0.1),
        ),
        0..12,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn identities_and_bounds_hold(
        region in 0usize..3,
        employee in any::<bool>(),
        retired in any::<bool>(),
        age in 18u32..95,
        inpatient in any::<bool>(),
        lv in 0usize..6,
        later in any::<bool>(),
        bill in lines(),
        otp in accum(),
        ipt in accum(),
        flag in any::<bool>(),
        balance in 0i64..2_000_000,
        cross in 0u8..4,
    ) {
        let set = policies();
        let code = ["110000", "120000", "130100"][region];
        let policy = set.region(adm(code)).unwrap();
        let hosp_lv = [HospLv::Community, HospLv::Level1, HospLv::Level2, HospLv::Level3,
            HospLv::Level3Provincial, HospLv::Pharmacy][lv];
        let mut input = base_input(
            if employee { Insutype::Employee } else { Insutype::Resident },
            if retired { PsnType::Retired } else { PsnType::InService },
            if inpatient { Setting::Inpatient } else { Setting::Outpatient },
            hosp_lv,
        );
        input.age_years = age;
        input.admission_ordinal = if later { AdmissionOrdinal::SecondOrLater } else { AdmissionOrdinal::First };
        for (n, (full, over, pre, inscp, refund)) in bill.iter().enumerate() {
            let mut l = line(&n.to_string(), *full, *over, *pre, 0, *inscp);
            if *refund { l.sign = LineSign::Refund; }
            input.lines.push(l);
        }
        input.accumulators.outpatient = otp;
        input.accumulators.inpatient = ipt;
        input.acct_used_flag = flag;
        input.acct_balance = fen(balance);
        input.cross_region = match cross {
            0 => None,
            1 => Some(CrossRegion { filed: true, emergency: false }),
            2 => Some(CrossRegion { filed: false, emergency: true }),
            _ => Some(CrossRegion { filed: false, emergency: false }),
        };
        // Independent signed totals.
        let net = |f: fn(&(i64, i64, i64, i64, bool)) -> i64| -> i64 {
            bill.iter().map(|l| if l.4 { -f(l) } else { f(l) }).sum()
        };
        let inscp = net(|l| l.3);
        let medfee = net(|l| l.0 + l.1 + l.2 + l.3);
        let any_negative = [net(|l| l.0), net(|l| l.1), net(|l| l.2), inscp].iter().any(|v| *v < 0);
        match compute_split(policy, &input) {
            Err(PolicyError::NoRule { .. }) => {}
            Err(PolicyError::NegativeBill { .. }) => prop_assert!(any_negative),
            Err(other) => prop_assert!(false, "unexpected error {other}"),
            Ok(s) => {
                prop_assert!(!any_negative);
                s.check_identities().unwrap();
                prop_assert_eq!(s.medfee_sumamt.fen(), medfee);
                prop_assert_eq!(s.inscp_scp_amt.fen(), inscp);
                prop_assert!(s.fund_pay_sumamt <= s.inscp_scp_amt);
                prop_assert!(s.act_pay_dedc <= s.inscp_scp_amt);
                prop_assert!(s.acct_pay.fen() <= balance);
                if !flag { prop_assert_eq!(s.acct_pay, Fen::ZERO); }
                for d in &s.setldetail {
                    prop_assert!(d.fund_payamt <= d.crt_payb_lmt_amt, "{:?}", d);
                    prop_assert!(d.fund_payamt <= d.inscp_scp_amt || d.inscp_scp_amt.is_zero() && d.fund_payamt.is_zero());
                }
                // Basic fund within the rule's remaining annual cap.
                if hosp_lv != HospLv::Pharmacy {
                    let rule = policy.rule(input.insutype, input.psn_type, input.setting, hosp_lv, age).unwrap();
                    let before = input.accumulators.setting(input.setting);
                    if let Some(cap) = &rule.annual_cap {
                        let left = (cap.value.fen() - before.hifp_paid.fen()).max(0);
                        prop_assert!(s.hifp_pay.fen() <= left);
                    }
                }
                // Accumulators only grow, by exactly the delta.
                let (a, b) = (input.accumulators, s.accumulators_after);
                for (x, y) in [(a.outpatient, b.outpatient), (a.inpatient, b.inpatient)] {
                    prop_assert!(y.deductible_used >= x.deductible_used);
                    prop_assert!(y.inscp_sum >= x.inscp_sum);
                    prop_assert!(y.hifp_paid >= x.hifp_paid);
                    prop_assert!(y.hifob_paid >= x.hifob_paid);
                    prop_assert!(y.hifmi_paid >= x.hifmi_paid);
                    prop_assert!(y.psn_inscp_share_sum >= x.psn_inscp_share_sum);
                }
                prop_assert_eq!(b.checked_sub(&s.accumulators_delta).unwrap(), a);
            }
        }
    }
}

//! Plays the day's events against the running platform: each visit by its HIS at the treating
//! region's node (card read at the kiosk through the agent when the event names a card), each
//! card purchase through the agent, each QR payment at the switch; records what came back.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::agent::{Agent, READER};
use crate::cards::{CardImage, by_label};
use crate::cluster::Cluster;
use crate::day::{Bill, Day, Event, Setting, Then};
use crate::his::{His, shanghai_display};
use crate::money::{fen_to_yuan, json_fen, yuan_to_fen};
use crate::payments::Payments;
use crate::relay::LossyRelay;
use crate::web::{get_ok, post_ok};

/// Field 41 and 42 of the demo's pharmacy terminal.
pub const TERMINAL_ID: &str = "PH000001";
/// Field 42.
pub const MERCHANT_ID: &str = "898110000000001";

/// How a settlement ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Settled and kept.
    Settled,
    /// Cancelled by the HIS (2208 / 2305).
    Cancelled,
    /// Its reply was lost; reversed by 2601.
    Reversed,
}

/// One settlement of the day.
#[derive(Debug, Clone)]
pub struct Settlement {
    /// The treating node's region.
    pub treating: String,
    /// The insured region's node.
    pub insured: String,
    /// medfee_sumamt, fund_pay_sumamt, acct_pay, psn_cash_pay in fen.
    pub amounts: [i64; 4],
    /// How it ended.
    pub outcome: Outcome,
}

/// One payment of the day.
#[derive(Debug, Clone)]
pub struct Payment {
    /// Bank code (routing table).
    pub bank: String,
    /// `card` or `qr`.
    pub channel: &'static str,
    /// Approved fen (0 when declined).
    pub approved_fen: i64,
}

/// What the day produced.
#[derive(Debug, Default)]
pub struct DayResult {
    /// Settlements in order.
    pub settlements: Vec<Settlement>,
    /// Payments in order.
    pub payments: Vec<Payment>,
    /// Cards read at the kiosk (label, spec version, masked holder name).
    pub cards_read: Vec<(String, String, String)>,
    /// Events that could not be played, with the reason (the demo fails if any is not
    /// expected, see `main`).
    pub skipped: Vec<String>,
}

/// An institution of `fixtures/institutions/institutions.csv`.
struct Institution {
    name: String,
    admdvs: String,
    kind: String,
}

/// A person of `fixtures/persons/cards.csv`.
struct Person {
    card_no: String,
    insuplc_admdvs: String,
}

/// The player's state.
pub struct Player<'a> {
    cluster: &'a Cluster,
    agent: &'a mut Agent,
    payments: &'a Payments,
    cards: &'a [CardImage],
    kiosk: reqwest::blocking::Client,
    institutions: BTreeMap<String, Institution>,
    persons: BTreeMap<String, Person>,
    his: BTreeMap<String, His>,
    in_reader: Option<String>,
    /// The result so far.
    pub result: DayResult,
}

fn csv_rows(path: &Path) -> Result<Vec<BTreeMap<String, String>>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut lines = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty());
    let header: Vec<&str> = lines
        .next()
        .context("CSV without header")?
        .split(',')
        .collect();
    Ok(lines
        .map(|l| {
            header
                .iter()
                .zip(l.split(','))
                .map(|(k, v)| ((*k).to_owned(), v.to_owned()))
                .collect()
        })
        .collect())
}

fn now_text() -> String {
    shanghai_display(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    )
}

impl<'a> Player<'a> {
    /// A player over the running platform.
    pub fn new(
        cluster: &'a Cluster,
        agent: &'a mut Agent,
        payments: &'a Payments,
        cards: &'a [CardImage],
        fixtures: &Path,
    ) -> Result<Player<'a>> {
        let mut institutions = BTreeMap::new();
        for row in csv_rows(&fixtures.join("institutions/institutions.csv"))? {
            let field = |k: &str| row.get(k).cloned().unwrap_or_default();
            institutions.insert(
                field("fixmedins_code"),
                Institution {
                    name: field("fixmedins_name"),
                    admdvs: field("admdvs"),
                    kind: field("kind"),
                },
            );
        }
        let mut persons = BTreeMap::new();
        for row in csv_rows(&fixtures.join("persons/cards.csv"))? {
            let field = |k: &str| row.get(k).cloned().unwrap_or_default();
            persons.insert(
                field("psn_no"),
                Person {
                    card_no: field("card_no"),
                    insuplc_admdvs: field("insuplc_admdvs"),
                },
            );
        }
        Ok(Player {
            cluster,
            agent,
            payments,
            cards,
            kiosk: reqwest::blocking::Client::builder()
                .timeout(std::time::Duration::from_secs(20))
                .build()?,
            institutions,
            persons,
            his: BTreeMap::new(),
            in_reader: None,
            result: DayResult::default(),
        })
    }

    /// Plays one event; `say` gets one line about it.
    pub fn play(&mut self, day: &Day, event: &Event) -> Result<String> {
        match event {
            Event::Visit {
                who,
                card,
                at,
                setting,
                bill,
                then,
            } => {
                let bill = day.bills.get(bill).context("unknown bill")?;
                self.visit(who, card.as_deref(), at, *setting, bill, *then)
                    .with_context(|| format!("visit of {who} at {at}"))
            }
            Event::Payment { card, amount } => self
                .card_payment(card, yuan_to_fen(amount)?)
                .with_context(|| format!("card payment with {card}")),
            Event::Qr {
                partner,
                card,
                amount,
            } => self
                .qr_payment(partner, card, yuan_to_fen(amount)?)
                .with_context(|| format!("QR payment for {card}")),
        }
    }

    /// Takes the card out of the reader at the end of the day.
    pub fn finish(&mut self) -> Result<()> {
        self.agent.remove(&self.kiosk)
    }

    fn ensure_card(&mut self, label: &str) -> Result<&'a CardImage> {
        let card = by_label(self.cards, label)?;
        if self.in_reader.as_deref() != Some(label) {
            self.agent.insert(&self.kiosk, &card.label, &card.path)?;
            self.in_reader = Some(label.to_owned());
        }
        Ok(card)
    }

    /// The kiosk reads the card through the agent and the holder enters the PIN.
    fn kiosk_read(&mut self, label: &str) -> Result<(String, String)> {
        let card = self.ensure_card(label)?;
        let agent = self.agent.url().to_owned();
        let reader = READER.replace(' ', "%20");
        let read = get_ok(&self.kiosk, &format!("{agent}/v1/readers/{reader}/card"))?;
        let pin = post_ok(
            &self.kiosk,
            &format!("{agent}/v1/readers/{reader}/verify-pin"),
            &json!({"pin": card.pin}),
        )?;
        if pin["verified"] != true {
            bail!("PIN not verified: {pin}");
        }
        let card_no = read["identity"]["card_number"]
            .as_str()
            .context("the agent read no card_number")?
            .to_owned();
        let region = read["identity"]["card_id"]
            .as_str()
            .and_then(|id| id.get(..6))
            .context("the agent read no card_id")?
            .to_owned();
        self.result.cards_read.retain(|c| c.0 != label);
        self.result.cards_read.push((
            label.to_owned(),
            read["identity"]["spec_version"]
                .as_str()
                .unwrap_or("?")
                .to_owned(),
            read["holder"]["name"].as_str().unwrap_or("?").to_owned(),
        ));
        Ok((card_no, region))
    }

    fn ensure_his(&mut self, at: &str) -> Result<()> {
        if !self.his.contains_key(at) {
            let institution = self
                .institutions
                .get(at)
                .with_context(|| format!("{at} is not in institutions.csv"))?;
            let node = self.cluster.node_for(&institution.admdvs)?;
            let mut his = His::new(
                &node.url,
                &self.cluster.his,
                at,
                &institution.name,
                &institution.admdvs,
            )?;
            his.sign_in()
                .with_context(|| format!("9001 sign-in of {at}"))?;
            self.his.insert(at.to_owned(), his);
        }
        Ok(())
    }

    fn visit(
        &mut self,
        who: &str,
        card: Option<&str>,
        at: &str,
        setting: Setting,
        bill: &Bill,
        then: Option<Then>,
    ) -> Result<String> {
        // The card's region: 卡识别码's first six digits when the kiosk read it, else the
        // person's region as the HIS's own card reader would see it.
        let (card_no, card_region) = match card {
            Some(label) => self.kiosk_read(label)?,
            None => {
                let person = self
                    .persons
                    .get(who)
                    .with_context(|| format!("{who} is not in persons/cards.csv"))?;
                (person.card_no.clone(), person.insuplc_admdvs.clone())
            }
        };
        let institution = self.institutions.get(at).context("institution")?;
        let pharmacy = institution.kind == "pharmacy";
        let treating = self.cluster.node_for(&institution.admdvs)?.admdvs.clone();
        let node_addr = self
            .cluster
            .node_for(&treating)?
            .url
            .trim_start_matches("http://")
            .to_owned();
        let (area, name) = (institution.admdvs.clone(), institution.name.clone());
        self.ensure_his(at)?;
        // 1101 goes where the national hub routes it: to the node of the card's region (the
        // envelope's insuplc_admdvs); a node looks up cards among its own insured only.
        let hub = His::new(
            &self.cluster.node_for(&card_region)?.url,
            &self.cluster.his,
            at,
            &name,
            &area,
        )?;
        let info = hub.call(
            "1101",
            &card_region,
            json!({"data": {"mdtrt_cert_type": "03", "mdtrt_cert_no": card_no,
                   "card_sn": "", "psn_cert_type": "", "certno": "", "psn_name": ""}}),
        )?;
        let his = self.his.get(at).context("HIS")?;
        let psn_no = info["baseinfo"]["psn_no"]
            .as_str()
            .context("1101: no psn_no")?
            .to_owned();
        if psn_no != who {
            bail!("1101 by card {card_no} answered {psn_no}, the day names {who}");
        }
        let insuinfo = &info["insuinfo"][0];
        let insutype = insuinfo["insutype"].as_str().unwrap_or("310").to_owned();
        let insuplc = insuinfo["insuplc_admdvs"]
            .as_str()
            .context("1101: no insuplc_admdvs")?
            .to_owned();
        let now = now_text();
        let (open_infno, upload_infno, settle_infno, cancel_infno) = match setting {
            Setting::Outpatient => ("2201", "2204", "2207", "2208"),
            Setting::Inpatient => ("2401", "2301", "2304", "2305"),
        };
        let open = match setting {
            Setting::Outpatient => json!({"data": {"psn_no": psn_no, "insutype": insutype,
                "begntime": now, "mdtrt_cert_type": "03", "mdtrt_cert_no": card_no,
                "ipt_otp_no": "MZ0001", "med_type": if pharmacy { "41" } else { "11" },
                "atddr_no": "D001", "dr_name": "医生", "dept_code": "A03", "dept_name": "内科",
                "caty": "A03"}}),
            Setting::Inpatient => json!({"mdtrtinfo": {"psn_no": psn_no, "insutype": insutype,
                "begntime": now, "mdtrt_cert_type": "03", "mdtrt_cert_no": card_no,
                "med_type": "21", "ipt_no": "ZY0001", "atddr_no": "D002", "chfpdr_name": "医生",
                "adm_dept_codg": "A03", "adm_dept_name": "内科", "adm_bed": "12",
                "dise_codg": "I21.900", "dise_name": "急性心肌梗死"}, "diseinfo": []}),
        };
        let reg = his.call(open_infno, &insuplc, open)?;
        let mdtrt_id = reg["data"]["mdtrt_id"]
            .as_str()
            .or(reg["result"]["mdtrt_id"].as_str())
            .or(reg["mdtrt_id"].as_str())
            .with_context(|| format!("{open_infno}: no mdtrt_id in {reg}"))?
            .to_owned();
        let mut feedetail = Vec::new();
        let mut total_fen: i64 = 0;
        for (i, line) in bill.lines.iter().enumerate() {
            let fen = yuan_to_fen(&line.pric)? * i64::from(line.cnt);
            total_fen += fen;
            feedetail.push(
                json!({"feedetl_sn": format!("{:04}", i + 1), "mdtrt_id": mdtrt_id,
                "psn_no": psn_no, "chrg_bchno": "B0001", "med_list_codg": line.code,
                "medins_list_codg": line.code, "det_item_fee_sumamt": fen_to_yuan(fen),
                "cnt": line.cnt.to_string(), "pric": line.pric, "fee_ocur_time": now}),
            );
        }
        let fees = his.call(upload_infno, &insuplc, json!({"feedetail": feedetail}))?;
        let sum = |field: &str| -> Result<i64> {
            let mut fen = 0;
            for line in fees["result"]
                .as_array()
                .context("fee upload: no result[]")?
            {
                fen += json_fen(&line[field])?;
            }
            Ok(fen)
        };
        if setting == Setting::Inpatient {
            his.call(
                "2402",
                &insuplc,
                json!({"dscginfo": {"mdtrt_id": mdtrt_id,
                "psn_no": psn_no, "insutype": insutype, "endtime": now_text(),
                "dise_codg": "I21.900", "dise_name": "急性心肌梗死", "dscg_way": "1"},
                "diseinfo": []}),
            )?;
        }
        let settle = json!({"data": {"psn_no": psn_no, "mdtrt_cert_type": "03",
            "mdtrt_cert_no": card_no, "medfee_sumamt": fen_to_yuan(total_fen),
            "psn_setlway": "01", "mdtrt_id": mdtrt_id, "chrg_bchno": "B0001",
            "insutype": insutype, "acct_used_flag": "1", "invono": format!("FP{mdtrt_id}"),
            "mid_setl_flag": "0",
            "fulamt_ownpay_amt": fen_to_yuan(sum("fulamt_ownpay_amt")?),
            "overlmt_selfpay": fen_to_yuan(sum("overlmt_amt")?),
            "preselfpay_amt": fen_to_yuan(sum("preselfpay_amt")?),
            "inscp_scp_amt": fen_to_yuan(sum("inscp_scp_amt")?)}});
        let mut record = Settlement {
            treating: treating.clone(),
            insured: self.cluster.node_for(&insuplc)?.admdvs.clone(),
            amounts: [0; 4],
            outcome: Outcome::Settled,
        };
        let line =
            if then == Some(Then::Timeout) {
                let relay = LossyRelay::start(&node_addr)?;
                let (msgid, reply) = his.send(settle_infno, &insuplc, settle, Some(&relay.url));
                if reply.is_ok() {
                    bail!("the relay passed the {settle_infno} reply on");
                }
                let swallowed = relay.finish()?;
                let rev = his.call(
                    "2601",
                    &insuplc,
                    json!({"data": {"psn_no": psn_no, "omsgid": msgid, "oinfno": settle_infno}}),
                )?;
                record.outcome = Outcome::Reversed;
                let _ = rev;
                format!(
                    "{at} {who} {settle_infno} reply lost ({swallowed}) → 2601 reversed {}",
                    fen_to_yuan(total_fen)
                )
            } else {
                let out = his.call(settle_infno, &insuplc, settle)?;
                let setlinfo = &out["setlinfo"];
                check_identities(setlinfo)?;
                let f = |k: &str| json_fen(&setlinfo[k]);
                record.amounts = [
                    f("medfee_sumamt")?,
                    f("fund_pay_sumamt")?,
                    f("acct_pay")?,
                    f("psn_cash_pay")?,
                ];
                if then == Some(Then::Cancel) {
                    let setl_id = setlinfo["setl_id"]
                        .as_str()
                        .context("no setl_id")?
                        .to_owned();
                    his.call(cancel_infno, &insuplc,
                    json!({"data": {"setl_id": setl_id, "mdtrt_id": mdtrt_id, "psn_no": psn_no}}))?;
                    record.outcome = Outcome::Cancelled;
                    format!(
                        "{at} {who} bill {} settled, then cancelled ({cancel_infno})",
                        fen_to_yuan(total_fen)
                    )
                } else {
                    format!(
                        "{at} {who} ({}) bill {}: fund {} account {} cash {}",
                        if treating == record.insured {
                            "home".to_owned()
                        } else {
                            format!("insured in {}", record.insured)
                        },
                        fen_to_yuan(record.amounts[0]),
                        fen_to_yuan(record.amounts[1]),
                        fen_to_yuan(record.amounts[2]),
                        fen_to_yuan(record.amounts[3])
                    )
                }
            };
        self.result.settlements.push(record);
        Ok(line)
    }

    fn card_payment(&mut self, label: &str, amount_fen: i64) -> Result<String> {
        let card = self.ensure_card(label)?;
        let reader = READER.replace(' ', "%20");
        let reply = post_ok(
            &self.kiosk,
            &format!("{}/v1/readers/{reader}/purchase", self.agent.url()),
            &json!({"amount_fen": amount_fen}),
        )?;
        let code = reply["response_code"].as_str().unwrap_or("none").to_owned();
        let approved_fen = if code == "00" || code == "10" {
            reply["approved_fen"].as_i64().unwrap_or(0)
        } else {
            0
        };
        let bank = self.payments.bank_of(&card.pan).unwrap_or("?").to_owned();
        let line = format!(
            "card purchase {label} {} at {TERMINAL_ID}: {} ({code}, card {})",
            fen_to_yuan(amount_fen),
            if approved_fen > 0 {
                "approved"
            } else {
                "declined"
            },
            reply["card_result"].as_str().unwrap_or("?")
        );
        self.result.payments.push(Payment {
            bank,
            channel: "card",
            approved_fen,
        });
        Ok(line)
    }

    fn qr_payment(&mut self, partner: &str, label: &str, amount_fen: i64) -> Result<String> {
        let card = by_label(self.cards, label)?;
        let url = format!("{}/payments/v1/qr", self.payments.url);
        if partner != crate::payments::QR_PARTNER {
            bail!(
                "the demo plays partner {}, not {partner}",
                crate::payments::QR_PARTNER
            );
        }
        let token = self.payments.qr_token(&card.pan, amount_fen)?;
        let reply = post_ok(
            &self.kiosk,
            &url,
            &json!({"terminal_id": TERMINAL_ID,
            "merchant_id": MERCHANT_ID, "amount_fen": amount_fen, "token": token}),
        )?;
        let code = reply["response_code"].as_str().unwrap_or("none").to_owned();
        let approved_fen = if code == "00" || code == "10" {
            reply["approved_fen"].as_i64().unwrap_or(amount_fen)
        } else {
            0
        };
        let bank = self.payments.bank_of(&card.pan).unwrap_or("?").to_owned();
        let line = format!(
            "QR payment {partner} for {label} {}: {code}",
            fen_to_yuan(amount_fen)
        );
        self.result.payments.push(Payment {
            bank,
            channel: "qr",
            approved_fen,
        });
        Ok(line)
    }
}

/// The national interface's identities on a settlement reply (medical-settlement.md §1.4).
fn check_identities(s: &Value) -> Result<()> {
    let f = |k: &str| json_fen(&s[k]);
    let total = f("medfee_sumamt")?;
    let parts = f("fulamt_ownpay_amt")?
        + f("overlmt_selfpay")?
        + f("preselfpay_amt")?
        + f("inscp_scp_amt")?;
    let split = f("fund_pay_sumamt")? + f("psn_part_amt")?;
    let person = f("acct_pay")? + f("psn_cash_pay")?;
    if total != parts || total != split || f("psn_part_amt")? != person {
        bail!("settlement reply breaks the interface identities: {s}");
    }
    Ok(())
}

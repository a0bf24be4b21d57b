//! Sign-in/out (9001/9002), person information (1101), year-to-date accumulators (5206), totals
//! reconciliation (3201), and the person import behind `settlement import-persons`.

use serde::Serialize;
use serde_json::json;

use super::locks::PersonGuard;
use super::person::{PersonImport, PersonRecord, personal_account_code};
use super::rows::{Row, Table, Value as Cell};
use super::settle::personal_fund;
use super::vault::PersonVaultError;
use super::{Medical, Output, Prior, ids, internal, out};
use crate::error::LedgerError;
use crate::ids::{AccountCode, Admdvs};
use crate::nhsa::input::{self, fen_field};
use crate::nhsa::money::Yuan;
use crate::nhsa::{ApiError, Envelope};
use crate::posting::{Leg, Posting, Side};
use crate::{AccountSpec, Fen};

/// Longest a fee upload's warm-up task (`Medical::warm_money_state`) holds a person's lock
/// waiting for the loader: past it the settlement behind it loads the state itself.
const WARM_LOAD_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(500);

impl Medical {
    /// The person `psn_no`: imported here, else (region node) from the node that insures them.
    /// Errors: `PersonNotFound`.
    pub(crate) async fn load_person(
        &self,
        psn_no: &str,
    ) -> Result<std::sync::Arc<PersonRecord>, ApiError> {
        match (self.load_person_local(psn_no).await, self.region.get()) {
            (Err(ApiError::PersonNotFound), Some(node)) => {
                let person = std::sync::Arc::new(
                    node.remote_person(psn_no)
                        .await
                        .ok_or(ApiError::PersonNotFound)?,
                );
                self.cache.put_person(person.clone());
                Ok(person)
            }
            (found, _) => found,
        }
    }

    /// The person `psn_no` imported here. Errors: `PersonNotFound`.
    pub(crate) async fn load_person_local(
        &self,
        psn_no: &str,
    ) -> Result<std::sync::Arc<PersonRecord>, ApiError> {
        if let Some(person) = self.cache.person(psn_no) {
            return Ok(person);
        }
        let record = self
            .ledger
            .store()
            .person_record(psn_no)
            .await
            .map_err(internal)?
            .ok_or(ApiError::PersonNotFound)?;
        let person: std::sync::Arc<PersonRecord> = std::sync::Arc::new(
            self.ledger
                .person_vault()
                .decode(psn_no, &record)
                .map_err(sealed_or_internal)?,
        );
        self.cache.put_person(person.clone());
        Ok(person)
    }

    /// A person's accumulators of `year` by name: the cache, else the database. On a miss the
    /// person's lock is taken first (when the cache keeps money state), so the loaded sums are
    /// cached only while no settlement of the person can commit: an unlocked load could read the
    /// sums before a settlement commits and cache them after it, and the person's next split
    /// would count the year's use short (cache.rs, "Rules that keep it exact"). Callers that hold
    /// the lock use `year_sums_held`. Errors: `Internal` (storage, or the lock in shared mode).
    pub(crate) async fn year_sums(
        &self,
        psn_no: &str,
        year: i64,
    ) -> Result<std::collections::BTreeMap<String, i64>, ApiError> {
        if let Some(sums) = self.cache.accumulators(psn_no, year) {
            return Ok(sums);
        }
        if !self.cache.keeps_money() {
            return self
                .ledger
                .store()
                .accumulators(psn_no, year)
                .await
                .map_err(internal);
        }
        let held = self.locks.lock(psn_no).await?;
        self.year_sums_held(&held, year).await
    }

    /// `year_sums` for a caller holding the person's lock (`held`).
    pub(crate) async fn year_sums_held(
        &self,
        held: &PersonGuard<'_>,
        year: i64,
    ) -> Result<std::collections::BTreeMap<String, i64>, ApiError> {
        let psn_no = held.psn_no();
        if let Some(sums) = self.cache.accumulators(psn_no, year) {
            return Ok(sums);
        }
        let sums = self
            .ledger
            .store()
            .accumulators(psn_no, year)
            .await
            .map_err(internal)?;
        self.cache.put_accumulators(psn_no, year, sums.clone());
        Ok(sums)
    }

    /// A person's accumulators of `year` by name and a personal account's credit balance (fen):
    /// from the cache when it has both, else from one coalesced load (`loads`), then cached.
    pub(crate) async fn money_state(
        &self,
        psn_no: &str,
        year: i64,
        account: crate::AccountId,
    ) -> Result<(std::collections::BTreeMap<String, i64>, i64), ApiError> {
        if let (Some(sums), Some(balance)) = (
            self.cache.accumulators(psn_no, year),
            self.cache.balance(account),
        ) {
            return Ok((sums, balance));
        }
        let (sums, balance) = self
            .loads
            .load(psn_no, year, account)
            .await
            .map_err(internal)?;
        self.cache.put_accumulators(psn_no, year, sums.clone());
        self.cache.put_balance(account, balance);
        Ok((sums, balance))
    }

    /// Has a person's money state (this year's accumulators, the personal account's balance)
    /// brought into the cache by a spawned task, if the cache does not hold it by the time the
    /// task holds the person's lock. The fee upload (2204) calls this before it answers, still
    /// holding the lock: the task finds the account (`insured` is the visit's 参保地), queues on
    /// the lock and loads while the answer travels and the HIS sends the settlement (2207). The
    /// 2207 then usually waits for the task and finds the state warm instead of waiting for the
    /// loader's round trip itself; either order is correct (ARCHITECTURE.md, "The pooled fund is
    /// a hot account", session 10). The state is loaded under the person's lock, after every
    /// change of the person that committed before it, as `money_state` loads it. The task holds
    /// the lock at most `WARM_LOAD_TIMEOUT` past the wait, and none is started while the loader
    /// is backlogged. Does nothing when the cache keeps no money state (`StateCache::share`) or
    /// another node serves `insured`. Failures are only logged: the settlement loads the state.
    pub(crate) fn warm_money_state(&self, psn_no: &str, insured: Admdvs) {
        if !self.cache.keeps_money()
            || self.loads.backlogged()
            || self.region.get().is_some_and(|node| !node.serves(insured))
        {
            return;
        }
        let Ok(code) = personal_account_code(psn_no) else {
            return;
        };
        // The visit's 参保地 was written from the person's region at 2201 (visit.rs,
        // `person_region`), so this is the account `personal_account` gives the settlement.
        let spec = AccountSpec::personal(insured, code);
        let year = super::ids::business_year(super::ids::now_ms());
        let (locks, cache, loads) = (self.locks.clone(), self.cache.clone(), self.loads.clone());
        let (accounts, ledger) = (self.accounts.clone(), self.ledger.clone());
        let psn_no = psn_no.to_owned();
        tokio::spawn(async move {
            let personal = match accounts.id(&ledger, spec).await {
                Ok(personal) => personal,
                Err(error) => {
                    tracing::debug!(%error, "money state not warmed");
                    return;
                }
            };
            let Ok(_held) = locks.lock(&psn_no).await else {
                return;
            };
            if cache.accumulators(&psn_no, year).is_some() && cache.balance(personal).is_some() {
                return;
            }
            let load = tokio::time::timeout(WARM_LOAD_TIMEOUT, loads.load(&psn_no, year, personal));
            match load.await {
                Ok(Ok((sums, balance))) => {
                    cache.put_accumulators(&psn_no, year, sums);
                    cache.put_balance(personal, balance);
                }
                Ok(Err(error)) => tracing::debug!(%error, "money state not warmed"),
                Err(_) => tracing::debug!("money state not warmed: the load timed out"),
            }
        });
    }

    /// The credit balance (fen) of `account`, the personal account of `psn_no`: the cache, else
    /// the ledger, taking the person's lock on a miss for the reason `year_sums` gives.
    /// Errors: `Internal`.
    pub(crate) async fn acct_balance_fen(
        &self,
        psn_no: &str,
        account: crate::AccountId,
    ) -> Result<i64, ApiError> {
        if let Some(balance) = self.cache.balance(account) {
            return Ok(balance);
        }
        if !self.cache.keeps_money() {
            return Ok(self
                .ledger
                .balance(account)
                .await
                .map_err(internal)?
                .credit_balance_fen());
        }
        let held = self.locks.lock(psn_no).await?;
        self.acct_balance_fen_held(&held, account).await
    }

    /// `acct_balance_fen` for a caller holding the lock (`_held`) of the account's person.
    pub(crate) async fn acct_balance_fen_held(
        &self,
        _held: &PersonGuard<'_>,
        account: crate::AccountId,
    ) -> Result<i64, ApiError> {
        if let Some(balance) = self.cache.balance(account) {
            return Ok(balance);
        }
        let balance = self
            .ledger
            .balance(account)
            .await
            .map_err(internal)?
            .credit_balance_fen();
        self.cache.put_balance(account, balance);
        Ok(balance)
    }

    /// The person's insured region, checked against the envelope's `insuplc_admdvs` if sent.
    pub(crate) fn person_region(
        &self,
        person: &PersonRecord,
        env: &Envelope,
    ) -> Result<Admdvs, ApiError> {
        let region = person.region().map_err(internal)?;
        match env.insuplc_admdvs {
            Some(sent) if sent != region => Err(ApiError::BadField {
                field: "insuplc_admdvs",
                reason: "differs from the person's insured region (take it from 1101)".to_owned(),
            }),
            _ => Ok(region),
        }
    }

    /// 9001.
    pub(crate) async fn sign_in(&self, env: &Envelope) -> Result<Output, ApiError> {
        let _: input::SignInInput = input::parse(&env.infno, &env.input)?;
        if let Prior::Answered(answer) = self.prior(env).await? {
            return answer;
        }
        let now = ids::now_ms();
        let output = out(&json!({"signinoutb": {
            "sign_time": ids::format_time(now),
            "sign_no": ids::record_id(env.mdtrtarea_admvs, "sign", &env.msgid),
        }}))?;
        self.commit_rows(env, "", Vec::new(), output).await
    }

    /// 9002.
    pub(crate) async fn sign_out(&self, env: &Envelope) -> Result<Output, ApiError> {
        let _: input::SignOutInput = input::parse(&env.infno, &env.input)?;
        if let Prior::Answered(answer) = self.prior(env).await? {
            return answer;
        }
        let output = out(&json!({"signoutoutb": {"sign_time": ids::format_time(ids::now_ms())}}))?;
        self.commit_rows(env, "", Vec::new(), output).await
    }

    /// 1101: by ID number (`mdtrt_cert_type` 02, `certno` or `mdtrt_cert_no`) or social security
    /// card number (03, `mdtrt_cert_no`). Read-only: nothing is recorded.
    pub(crate) async fn person_info(&self, env: &Envelope) -> Result<Output, ApiError> {
        let data: input::Data<input::PersonQuery> = input::parse(&env.infno, &env.input)?;
        let query = data.data;
        let number = |n: &Option<String>| n.clone().filter(|s| !s.is_empty());
        let (kind, key) = match query.mdtrt_cert_type.as_str() {
            "02" => (
                "certno",
                number(&query.certno).or(number(&query.mdtrt_cert_no)),
            ),
            "03" => ("card", number(&query.mdtrt_cert_no)),
            _ => {
                return Err(ApiError::BadField {
                    field: "mdtrt_cert_type",
                    reason: "02 (身份证) and 03 (社保卡) are supported".to_owned(),
                });
            }
        };
        let key = key.ok_or(ApiError::BadField {
            field: "mdtrt_cert_no",
            reason: "the certificate or card number is missing".to_owned(),
        })?;
        let found = self
            .ledger
            .store()
            .persons_by_lookups(
                &self.ledger.person_vault().lookups(kind, &key),
                kind == "card",
            )
            .await
            .map_err(internal)?;
        let [psn_no] = found.as_slice() else {
            // Without keys, a sealed register cannot be searched: say so rather than "not found".
            if found.is_empty()
                && !self.ledger.person_vault().sealing()
                && self
                    .ledger
                    .store()
                    .persons_sealed()
                    .await
                    .map_err(internal)?
            {
                return Err(sealed_or_internal(PersonVaultError::Sealed));
            }
            return Err(ApiError::PersonNotFound);
        };
        let person = self.load_person(psn_no).await?;
        let account = self.personal_account(&person).await?;
        let balc = Fen::from_fen(self.acct_balance_fen(psn_no, account).await?.max(0))
            .map_err(internal)?;
        #[derive(Serialize)]
        struct InsuInfo {
            balc: Yuan,
            insutype: String,
            psn_type: String,
            psn_insu_stas: &'static str,
            cvlserv_flag: &'static str,
            insuplc_admdvs: String,
            emp_name: String,
        }
        #[derive(Serialize)]
        struct Reply {
            baseinfo: serde_json::Value,
            insuinfo: [InsuInfo; 1],
            idetinfo: [(); 0],
        }
        let age = person.age_on(&ids::format_date(ids::now_ms()));
        out(&Reply {
            baseinfo: json!({
                "psn_no": person.psn_no,
                "psn_cert_type": "01",
                "certno": person.certno,
                "psn_name": person.psn_name,
                "gend": person.gend,
                "brdy": person.brdy,
                "age": age,
            }),
            insuinfo: [InsuInfo {
                balc: Yuan(balc),
                insutype: person.insutype.clone(),
                psn_type: person.psn_type.clone(),
                psn_insu_stas: "1",
                cvlserv_flag: "0",
                insuplc_admdvs: person.insuplc_admdvs.clone(),
                emp_name: person.emp_name.clone(),
            }],
            idetinfo: [],
        })
    }

    /// 5206: the person's accumulators of a year (`cum_ym` `yyyy` or `yyyyMM`; default this year).
    pub(crate) async fn accumulators(&self, env: &Envelope) -> Result<Output, ApiError> {
        let data: input::Data<input::AccumQuery> = input::parse(&env.infno, &env.input)?;
        let query = data.data;
        let year_text = match query.cum_ym.as_deref() {
            Some(ym) if ym.len() >= 4 => ym[..4].to_owned(),
            _ => ids::format_date(ids::now_ms())[..4].to_owned(),
        };
        let year: i64 = year_text.parse().map_err(|_| ApiError::BadField {
            field: "cum_ym",
            reason: "must start with a 4-digit year".to_owned(),
        })?;
        self.load_person(&query.psn_no).await?;
        let sums = self.year_sums(&query.psn_no, year).await?;
        #[derive(Serialize)]
        struct Cum<'a> {
            year: &'a str,
            cum_type_code: &'a str,
            /// Yuan (2 decimals) for money; a count for `*.admissions`.
            cum: crate::nhsa::money::SignedYuan,
        }
        #[derive(Serialize)]
        struct Reply<'a> {
            cuminfo: Vec<Cum<'a>>,
        }
        let cuminfo = sums
            .iter()
            .map(|(name, fen)| Cum {
                year: &year_text,
                cum_type_code: name,
                cum: crate::nhsa::money::SignedYuan(if name.ends_with(".admissions") {
                    fen.saturating_mul(100)
                } else {
                    *fen
                }),
            })
            .collect();
        out(&Reply { cuminfo })
    }

    /// 3201: compare HIS's totals with the live settlements of this institution.
    pub(crate) async fn totals(&self, env: &Envelope) -> Result<Output, ApiError> {
        let data: input::Data<input::TotalsCheck> = input::parse(&env.infno, &env.input)?;
        let check = data.data;
        let medfee = fen_field("medfee_sumamt", &check.medfee_sumamt)?;
        let fund = fen_field("fund_pay_sumamt", &check.fund_pay_sumamt)?;
        let acct = fen_field("acct_pay", &check.acct_pay)?;
        let count: i64 =
            check
                .fixmedins_setl_cnt
                .text()
                .parse()
                .map_err(|_| ApiError::BadAmount {
                    field: "fixmedins_setl_cnt".to_owned(),
                    reason: "must be a whole number".to_owned(),
                })?;
        for (field, date) in [
            ("stmt_begndate", &check.stmt_begndate),
            ("stmt_enddate", &check.stmt_enddate),
        ] {
            let ok = date.len() == 10
                && date.bytes().enumerate().all(|(i, b)| {
                    if i == 4 || i == 7 {
                        b == b'-'
                    } else {
                        b.is_ascii_digit()
                    }
                });
            if !ok {
                return Err(ApiError::BadField {
                    field,
                    reason: "must be yyyy-MM-dd".to_owned(),
                });
            }
        }
        let ours = self
            .ledger
            .store()
            .totals(
                &env.fixmedins_code,
                &check.insutype,
                &check.stmt_begndate,
                &check.stmt_enddate,
            )
            .await
            .map_err(internal)?;
        let balanced = ours.medfee_sumamt_fen == medfee.fen()
            && ours.fund_pay_sumamt_fen == fund.fen()
            && ours.acct_pay_fen == acct.fen()
            && ours.count == count;
        let yuan = |fen: i64| crate::nhsa::money::SignedYuan(fen);
        #[derive(Serialize)]
        struct StmtInfo {
            setl_optins: Option<String>,
            stmt_rslt: &'static str,
            stmt_rslt_dscr: &'static str,
            medfee_sumamt: crate::nhsa::money::SignedYuan,
            fund_pay_sumamt: crate::nhsa::money::SignedYuan,
            acct_pay: crate::nhsa::money::SignedYuan,
            fixmedins_setl_cnt: i64,
        }
        #[derive(Serialize)]
        struct Reply {
            stmtinfo: StmtInfo,
        }
        out(&Reply {
            stmtinfo: StmtInfo {
                setl_optins: check.setl_optins,
                stmt_rslt: if balanced { "0" } else { "1" },
                stmt_rslt_dscr: if balanced { "平" } else { "不平" },
                medfee_sumamt: yuan(ours.medfee_sumamt_fen),
                fund_pay_sumamt: yuan(ours.fund_pay_sumamt_fen),
                acct_pay: yuan(ours.acct_pay_fen),
                fixmedins_setl_cnt: ours.count,
            },
        })
    }

    /// Imports persons: their records, and each personal account with its opening balance (one
    /// posting per person, id derived from the psn_no, so a re-import changes nothing; openings
    /// are posted concurrently so they share the writer's batches). Persons already present are
    /// skipped; after an import that added any, the planner statistics of the filled tables are
    /// refreshed (`analyze_imported`). Returns how many were added.
    pub async fn import_persons(&self, persons: &[PersonImport]) -> Result<usize, LedgerError> {
        let mut added = 0;
        for chunk in persons.chunks(1_000) {
            let names: Vec<String> = chunk.iter().map(|p| p.record.psn_no.clone()).collect();
            let existing = self.ledger.store().existing_persons(&names).await?;
            let mut rows = Vec::with_capacity(chunk.len());
            for import in chunk {
                let person = &import.record;
                if existing.contains(&person.psn_no) {
                    continue;
                }
                let region = person.region()?;
                let vault = self.ledger.person_vault();
                let record = vault
                    .encode(person)
                    .map_err(|_| LedgerError::Corrupt("person record"))?;
                rows.push(Row {
                    table: Table::Persons,
                    values: vec![
                        Cell::Text(person.psn_no.clone()),
                        Cell::Bytes(vault.lookup("certno", &person.certno).to_vec()),
                        person.card_no.as_ref().map_or(Cell::NullBytes, |card| {
                            Cell::Bytes(vault.lookup("card", card).to_vec())
                        }),
                        Cell::I64(i64::from(region.code())),
                        Cell::Text(record),
                    ],
                });
            }
            // The opening balances commit before the person rows: until its row exists nobody
            // can find the person, so no reader (1101, a 2204's warm-up) caches a balance the
            // opening then changes behind the cache's back. Openings are idempotent (one
            // posting id per person), so a re-run after a crash in between completes them.
            let mut openings = tokio::task::JoinSet::new();
            for import in chunk {
                let (ledger, accounts) = (self.ledger.clone(), self.accounts.clone());
                let import = import.clone();
                openings.spawn(async move { open_account(&ledger, &accounts, &import).await });
            }
            while let Some(result) = openings.join_next().await {
                result.map_err(|_| LedgerError::WriterGone)??;
            }
            added += rows.len();
            if !rows.is_empty() {
                self.rows.write(rows).await?;
            }
        }
        if added > 0 {
            self.ledger.store().analyze_imported().await?;
        }
        Ok(added)
    }
}

async fn open_account(
    ledger: &crate::Ledger,
    accounts: &super::accounts::AccountCache,
    import: &PersonImport,
) -> Result<(), LedgerError> {
    let person = &import.record;
    let region = person.region()?;
    let code: AccountCode = personal_account_code(&person.psn_no)?;
    let account = accounts
        .id(ledger, AccountSpec::personal(region, code))
        .await?;
    if import.acct_opening.is_zero() {
        return Ok(());
    }
    let fund = accounts.id(ledger, personal_fund(region)).await?;
    let posting = Posting {
        id: ids::posting_id_of(&format!("acct-open:{}", person.psn_no)),
        admdvs: region,
        legs: vec![
            Leg {
                account: fund,
                side: Side::Debit,
                amount: import.acct_opening,
            },
            Leg {
                account,
                side: Side::Credit,
                amount: import.acct_opening,
            },
        ],
        link: None,
    };
    match ledger.post(posting).await {
        Ok(_) | Err(LedgerError::IdempotencyConflict(_)) => Ok(()),
        Err(error) => Err(error),
    }
}

/// A person record that cannot be read: sealed here without keys is a node configuration fault
/// the caller is told about (`E2401`); anything else is internal (logged).
fn sealed_or_internal(error: PersonVaultError) -> ApiError {
    match error {
        PersonVaultError::Sealed => ApiError::MissingReferenceData(error.to_string()),
        PersonVaultError::Corrupt => internal(error),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use crate::ledger::{Ledger, LedgerOptions};
    use crate::medical::{Medical, PersonImport, RefData};
    use crate::nhsa::{ApiError, Envelope};

    /// A fresh SQLite ledger in `dir` with `refdata` and `persons` imported.
    async fn medical_with(
        dir: &std::path::Path,
        refdata: RefData,
        persons: &[crate::refdata::Person],
    ) -> (Arc<Ledger>, Medical) {
        let ledger = Arc::new(
            Ledger::open_data_dir(dir, LedgerOptions::default())
                .await
                .unwrap(),
        );
        let medical = Medical::new(ledger.clone(), refdata);
        let imports: Vec<PersonImport> = persons.iter().map(PersonImport::from).collect();
        medical.import_persons(&imports).await.unwrap();
        (ledger, medical)
    }

    /// Drops `medical`, waits for its spawned tasks to let go of the ledger, closes the ledger.
    async fn close(ledger: Arc<Ledger>, medical: Medical) {
        drop(medical);
        eventually("the tasks end", || Arc::strong_count(&ledger) == 1).await;
        Arc::try_unwrap(ledger).unwrap().close().await;
    }

    /// Waits (up to 10 s) until `ready` holds.
    async fn eventually(what: &str, mut ready: impl FnMut() -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !ready() {
            assert!(tokio::time::Instant::now() < deadline, "never: {what}");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// The fee upload's warm-up (`warm_money_state`) loads the person's money state only once
    /// the caller's hold on the person's lock ends, and then it is in the cache: the opening
    /// balance the import gave the personal account less what the caller spent before letting
    /// go, and no accumulator of the year.
    #[tokio::test]
    async fn the_money_state_is_warmed_behind_the_callers_lock() {
        let dir = tempfile::tempdir().unwrap();
        let person = crate::refdata::generate_persons(1, 1).next().unwrap();
        assert!(person.acct_balance.fen() > 0, "a fixture with money to see");
        let (ledger, medical) = medical_with(
            dir.path(),
            RefData::default(),
            std::slice::from_ref(&person),
        )
        .await;
        let psn_no = person.psn_no.as_str();
        let record = medical.load_person(psn_no).await.unwrap();
        let personal = medical.personal_account(&record).await.unwrap();
        let year = super::super::ids::business_year(super::super::ids::now_ms());

        let held = medical.locks.lock(psn_no).await.unwrap();
        medical.warm_money_state(psn_no, record.region().unwrap());
        eventually("the warm-up queues on the lock", || {
            medical.locks.waiters(psn_no, true) == 1
        })
        .await;
        assert_eq!(
            medical.cache.balance(personal),
            None,
            "loaded under the caller's lock"
        );
        // As a settlement holding the lock would: 1.00 yuan leaves the account and commits
        // before the lock is released (the cache held no balance to change).
        let region = record.region().unwrap();
        let fund = medical.account(super::personal_fund(region)).await.unwrap();
        let spent = crate::Fen::from_fen(100).unwrap();
        let leg = |account, side| super::Leg {
            account,
            side,
            amount: spent,
        };
        ledger
            .post(super::Posting {
                id: super::ids::posting_id_of("test-spend"),
                admdvs: region,
                legs: vec![
                    leg(personal, super::Side::Debit),
                    leg(fund, super::Side::Credit),
                ],
                link: None,
            })
            .await
            .unwrap();
        drop(held);

        eventually("the state is warm", || {
            medical.cache.balance(personal).is_some()
                && medical.cache.accumulators(psn_no, year).is_some()
        })
        .await;
        assert_eq!(
            medical.cache.balance(personal),
            Some(person.acct_balance.fen() - 100),
            "the balance after the change that committed before the warm-up held the lock"
        );
        assert_eq!(
            medical.cache.accumulators(psn_no, year),
            Some(Default::default())
        );
        close(ledger, medical).await;
    }

    /// Reads without the person's lock (1101's balance, 5206's sums) take it on a cache miss, so
    /// what they cache cannot predate a settlement committing meanwhile; a hit does not wait.
    #[tokio::test]
    async fn a_cold_read_waits_for_the_persons_lock_and_a_warm_one_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let person = crate::refdata::generate_persons(1, 1).next().unwrap();
        let (ledger, medical) = medical_with(
            dir.path(),
            RefData::default(),
            std::slice::from_ref(&person),
        )
        .await;
        let psn_no = person.psn_no.as_str();
        let record = medical.load_person(psn_no).await.unwrap();
        let personal = medical.personal_account(&record).await.unwrap();
        let year = super::super::ids::business_year(super::super::ids::now_ms());
        let waits = Duration::from_millis(200);

        let held = medical.locks.lock(psn_no).await.unwrap();
        let balance = tokio::time::timeout(waits, medical.acct_balance_fen(psn_no, personal));
        assert!(balance.await.is_err(), "a cold balance read waits");
        let sums = tokio::time::timeout(waits, medical.year_sums(psn_no, year));
        assert!(sums.await.is_err(), "a cold accumulator read waits");
        assert_eq!(medical.cache.balance(personal), None);
        drop(held);

        assert_eq!(
            medical.acct_balance_fen(psn_no, personal).await.unwrap(),
            person.acct_balance.fen()
        );
        assert!(medical.year_sums(psn_no, year).await.unwrap().is_empty());

        let held = medical.locks.lock(psn_no).await.unwrap();
        let balance = tokio::time::timeout(waits, medical.acct_balance_fen(psn_no, personal));
        assert_eq!(balance.await.unwrap().unwrap(), person.acct_balance.fen());
        let sums = tokio::time::timeout(waits, medical.year_sums(psn_no, year));
        assert!(sums.await.unwrap().unwrap().is_empty());
        drop(held);
        close(ledger, medical).await;
    }

    /// The fixture reference data (fixtures/catalogue, policy, institutions), the fixture
    /// persons (fixtures/persons/cards.csv) and the steps of the Beijing outpatient visit as the
    /// HIS sends it (fixtures/his/outpatient-beijing-310.json) with its person.
    fn fixture_visit() -> (
        RefData,
        Vec<crate::refdata::Person>,
        Vec<serde_json::Value>,
        String,
    ) {
        let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures");
        let institutions =
            crate::refdata::load_institutions(&fixtures.join("institutions/institutions.csv"))
                .unwrap();
        let refdata = RefData {
            catalogues: crate::catalogue::CatalogueSet::load_dir(&fixtures.join("catalogue"))
                .unwrap(),
            policies: crate::policy::PolicySet::load_dir(&fixtures.join("policy")).unwrap(),
            institutions: institutions
                .into_iter()
                .map(|i| (i.fixmedins_code, i.hosp_lv))
                .collect(),
        };
        let persons =
            crate::refdata::load_persons_csv(&fixtures.join("persons/cards.csv")).unwrap();
        let text =
            std::fs::read_to_string(fixtures.join("his/outpatient-beijing-310.json")).unwrap();
        let steps: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
        let psn_no = steps
            .iter()
            .find_map(|step| step["input"]["data"]["psn_no"].as_str())
            .unwrap()
            .to_owned();
        (refdata, persons, steps, psn_no)
    }

    /// Sends the fixture steps numbered `infnos` (placeholders filled); returns the visit's
    /// `mdtrt_id`. `after` runs after each step with its infno.
    async fn replay(
        medical: &Medical,
        steps: &[serde_json::Value],
        infnos: &[&str],
        mut after: impl AsyncFnMut(&str),
    ) -> String {
        let (mut mdtrt_id, mut sign_no) = (String::new(), String::new());
        for step in steps {
            let infno = step["infno"].as_str().unwrap().to_owned();
            if !infnos.contains(&infno.as_str()) {
                continue;
            }
            let body = step
                .to_string()
                .replace("${mdtrt_id}", &mdtrt_id)
                .replace("${sign_no}", &sign_no);
            let output = medical
                .handle(&Envelope::parse(body.as_bytes()).unwrap())
                .await
                .unwrap();
            let output: serde_json::Value = serde_json::from_str(output.get()).unwrap();
            if let Some(id) = output["data"]["mdtrt_id"].as_str() {
                mdtrt_id = id.to_owned();
            }
            if let Some(no) = output["signinoutb"]["sign_no"].as_str() {
                sign_no = no.to_owned();
            }
            after(&infno).await;
        }
        assert!(!mdtrt_id.is_empty(), "the fixture registered a visit");
        mdtrt_id
    }

    /// A fee upload (2204) as the HIS sends it (fixtures/his) leaves the person's money state
    /// warm for the settlement; the registration (2201) before it does not.
    #[tokio::test]
    async fn a_fee_upload_warms_the_persons_money_state() {
        let (refdata, persons, steps, psn_no) = fixture_visit();
        let dir = tempfile::tempdir().unwrap();
        let (ledger, medical) = medical_with(dir.path(), refdata, &persons).await;
        let person = persons.iter().find(|p| p.psn_no == psn_no).unwrap();
        let record = medical.load_person(&psn_no).await.unwrap();
        let personal = medical.personal_account(&record).await.unwrap();
        let year = super::super::ids::business_year(super::super::ids::now_ms());

        replay(
            &medical,
            &steps,
            &["9001", "2201", "2204"],
            async |infno: &str| {
                if infno == "2201" {
                    // Whatever the registration started has finished once its person is free.
                    drop(medical.locks.lock(&psn_no).await.unwrap());
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    drop(medical.locks.lock(&psn_no).await.unwrap());
                    assert_eq!(medical.cache.accumulators(&psn_no, year), None);
                }
            },
        )
        .await;
        eventually("the 2204 warmed the state", || {
            medical.cache.balance(personal).is_some()
                && medical.cache.accumulators(&psn_no, year).is_some()
        })
        .await;
        assert_eq!(
            medical.cache.balance(personal),
            Some(person.acct_balance.fen())
        );
        assert_eq!(
            medical.cache.accumulators(&psn_no, year),
            Some(Default::default())
        );
        close(ledger, medical).await;
    }

    /// A request naming another person's visit finds no visit and leaves nothing in the cache:
    /// it holds only its own person's lock, so a copy it cached could miss a change the visit's
    /// person commits meanwhile (a second settlement of a settled visit then passing the check).
    #[tokio::test]
    async fn another_persons_visit_is_not_found_and_not_cached() {
        let (refdata, persons, steps, psn_no) = fixture_visit();
        let other = persons
            .iter()
            .find(|p| p.psn_no != psn_no)
            .unwrap()
            .psn_no
            .clone();
        let dir = tempfile::tempdir().unwrap();
        let (ledger, medical) = medical_with(dir.path(), refdata, &persons).await;
        let mdtrt_id = replay(&medical, &steps, &["9001", "2201"], async |_: &str| {}).await;
        let outpatient = super::super::visit::Kind::Outpatient;
        medical.cache.forget(&psn_no, &mdtrt_id, None);

        let held = medical.locks.lock(&other).await.unwrap();
        let found = medical.live_visit(&mdtrt_id, &other, outpatient).await;
        assert!(
            matches!(found, Err(ApiError::VisitNotFound)),
            "{:?}",
            found.map(|_| ())
        );
        assert_eq!(
            medical.cache.visit(&mdtrt_id),
            None,
            "cached under {other}'s lock"
        );
        drop(held);

        let held = medical.locks.lock(&psn_no).await.unwrap();
        let state = medical
            .live_visit(&mdtrt_id, &psn_no, outpatient)
            .await
            .unwrap();
        assert_eq!(state.visit.psn_no, psn_no);
        assert_eq!(medical.cache.visit(&mdtrt_id), Some(state));
        // A cached visit is not another person's either.
        let found = medical.live_visit(&mdtrt_id, &other, outpatient).await;
        assert!(matches!(found, Err(ApiError::VisitNotFound)));
        drop(held);
        close(ledger, medical).await;
    }
}

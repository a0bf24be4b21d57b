//! `settlement-refdata`: reference data tools for the settlement service (issue 5).
//!
//! - `gen-persons --count N --seed S --out FILE`: writes a deterministic made-up population (the
//!   benchmark's ≥ 100 000 insured persons) as the persons CSV `refdata::load_persons_csv` reads.
//! - `check --policy DIR --catalogue DIR --persons FILE --institutions FILE`: loads everything and
//!   prints counts (exit code 1 with the typed error on the first bad file).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use settlement::catalogue::CatalogueSet;
use settlement::policy::PolicySet;
use settlement::refdata;

#[derive(Parser)]
#[command(
    name = "settlement-refdata",
    about = "Reference data tools for the settlement service"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write a deterministic made-up population as a persons CSV.
    GenPersons {
        /// Number of persons (at most 72 000 000).
        #[arg(long)]
        count: u64,
        /// Seed: the same count and seed give the same file.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Output file.
        #[arg(long)]
        out: PathBuf,
    },
    /// Load and validate reference data files, print counts.
    Check {
        /// Directory of policy TOML files.
        #[arg(long, default_value = "fixtures/policy")]
        policy: PathBuf,
        /// Directory of catalogue CSV files.
        #[arg(long, default_value = "fixtures/catalogue")]
        catalogue: PathBuf,
        /// Persons CSV.
        #[arg(long, default_value = "fixtures/persons/cards.csv")]
        persons: PathBuf,
        /// Institutions CSV.
        #[arg(long, default_value = "fixtures/institutions/institutions.csv")]
        institutions: PathBuf,
    },
}

fn run(cli: Cli) -> Result<String, String> {
    match cli.command {
        Command::GenPersons { count, seed, out } => {
            let written = refdata::write_persons_csv(&out, refdata::generate_persons(count, seed))
                .map_err(|e| e.to_string())?;
            Ok(format!("wrote {written} persons to {}", out.display()))
        }
        Command::Check {
            policy,
            catalogue,
            persons,
            institutions,
        } => {
            let policies = PolicySet::load_dir(&policy).map_err(|e| e.to_string())?;
            let catalogues = CatalogueSet::load_dir(&catalogue).map_err(|e| e.to_string())?;
            let persons = refdata::load_persons_csv(&persons).map_err(|e| e.to_string())?;
            let institutions =
                refdata::load_institutions(&institutions).map_err(|e| e.to_string())?;
            let mut text = String::new();
            for admdvs in policies.regions() {
                let rules = policies.region(admdvs).map_or(0, |p| p.rules.len());
                text.push_str(&format!("policy {admdvs}: {rules} rules\n"));
            }
            for admdvs in catalogues.regions() {
                let entries = catalogues.region(admdvs).map_or(0, |c| c.len());
                text.push_str(&format!("catalogue {admdvs}: {entries} entries\n"));
            }
            text.push_str(&format!(
                "persons: {}\ninstitutions: {}",
                persons.len(),
                institutions.len()
            ));
            Ok(text)
        }
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(text) => {
            let _ = writeln!(std::io::stdout(), "{text}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            let _ = writeln!(std::io::stderr(), "settlement-refdata: {message}");
            ExitCode::FAILURE
        }
    }
}

//! The three regional settlement nodes (北京 110000, 天津 120000, 河北 130000), each its own
//! `settlement serve --region X --regions FILE` process with its own SQLite database, its own
//! insured persons and the fixture reference data, linked by signed HTTP as
//! `fixtures/regions/regions.toml` describes (ports and link keys replaced by fresh ones).

use std::path::Path;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::keys::random_hex;
use crate::procs::{self, Proc, free_port, wait_healthy};
use crate::web::Gateway;

/// One running node.
pub struct Node {
    /// Its region (province-level division).
    pub admdvs: String,
    /// Display name from the regions file.
    pub name: String,
    /// Division prefixes it is the insured node for.
    pub serves: Vec<String>,
    /// Base URL.
    pub url: String,
    /// The process.
    pub proc: Proc,
}

/// The cluster.
pub struct Cluster {
    /// The nodes, in the regions file's order.
    pub nodes: Vec<Node>,
    /// The HIS callers' gateway credentials (every node accepts them).
    pub his: Gateway,
    /// The operators' gateway credentials.
    pub operator: Gateway,
    /// The operators' console's first administrator (name, password), fresh per run.
    pub console_admin: (String, String),
}

/// A region of the regions file.
struct RegionSpec {
    admdvs: String,
    name: String,
    serves: Vec<String>,
}

/// Writes the demo's regions file from the fixture's: each node on a free loopback port, each
/// link under a fresh random key. Returns the regions and their ports.
fn write_regions(fixture: &Path, out: &Path) -> Result<Vec<(RegionSpec, u16)>> {
    let text = std::fs::read_to_string(fixture)
        .with_context(|| format!("reading {}", fixture.display()))?;
    let mut file: toml::Table = text
        .parse()
        .with_context(|| format!("parsing {}", fixture.display()))?;
    let mut regions = Vec::new();
    if let Some(list) = file.get_mut("region").and_then(|v| v.as_array_mut()) {
        for region in list.iter_mut().filter_map(|r| r.as_table_mut()) {
            let port = free_port()?;
            region.insert(
                "url".into(),
                toml::Value::String(format!("http://127.0.0.1:{port}")),
            );
            let text = |key: &str| region.get(key).and_then(|v| v.as_str()).map(str::to_owned);
            let spec = RegionSpec {
                admdvs: text("admdvs").context("a [[region]] without admdvs")?,
                name: text("name").unwrap_or_default(),
                serves: region
                    .get("serves")
                    .and_then(|v| v.as_array())
                    .map(|a| {
                        a.iter()
                            .filter_map(|s| s.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default(),
            };
            regions.push((spec, port));
        }
    }
    if let Some(links) = file.get_mut("link").and_then(|v| v.as_array_mut()) {
        for link in links.iter_mut().filter_map(|l| l.as_table_mut()) {
            link.insert("key_hex".into(), toml::Value::String(random_hex(32)?));
        }
    }
    if regions.is_empty() {
        bail!("{}: no [[region]]", fixture.display());
    }
    std::fs::write(out, toml::to_string(&file)?)?;
    Ok(regions)
}

/// The persons of `persons_csv` insured in a division starting with one of `serves`, as a CSV
/// at `out` (header kept).
fn persons_of(persons_csv: &Path, serves: &[String], out: &Path) -> Result<usize> {
    let text = std::fs::read_to_string(persons_csv)
        .with_context(|| format!("reading {}", persons_csv.display()))?;
    let mut lines = text.lines().filter(|l| !l.starts_with('#'));
    let header = lines.next().context("persons CSV without a header")?;
    let column = header
        .split(',')
        .position(|c| c == "insuplc_admdvs")
        .context("persons CSV without insuplc_admdvs")?;
    let mut kept = vec![header.to_owned()];
    for line in lines {
        let insuplc = line.split(',').nth(column).unwrap_or("");
        if serves.iter().any(|p| insuplc.starts_with(p.as_str())) {
            kept.push(line.to_owned());
        }
    }
    std::fs::write(out, kept.join("\n") + "\n")?;
    Ok(kept.len() - 1)
}

impl Cluster {
    /// Starts one node per region of `fixtures/regions/regions.toml` under `data`.
    pub fn start(bins: &Path, data: &Path, fixtures: &Path) -> Result<Cluster> {
        let regions_file = data.join("regions.toml");
        let regions = write_regions(&fixtures.join("regions/regions.toml"), &regions_file)?;
        let his = Gateway {
            paas_id: "demo-his".into(),
            token: random_hex(16)?,
        };
        let operator = Gateway {
            paas_id: "demo-operator".into(),
            token: random_hex(16)?,
        };
        let console_admin = ("demo".to_owned(), random_hex(8)?);
        let console_seed = format!("{}:{}", console_admin.0, console_admin.1);
        let paas = format!(
            "{}={},{}={}",
            his.paas_id, his.token, operator.paas_id, operator.token
        );
        let mut nodes = Vec::new();
        for (spec, port) in regions {
            let dir = data.join(format!("node-{}", spec.admdvs));
            let dir_text = crate::path_str(&dir)?;
            let persons = data.join(format!("persons-{}.csv", spec.admdvs));
            persons_of(&fixtures.join("persons/cards.csv"), &spec.serves, &persons)?;
            procs::run_to_end(
                bins,
                "settlement",
                &[
                    "import-persons",
                    &crate::path_str(&persons)?,
                    "--data",
                    &dir_text,
                ],
                &[],
                &data.join(format!("node-{}-import.log", spec.admdvs)),
            )?;
            // The open directory of card uses, on every node (each serves /directory/).
            let catalog = crate::path_str(&fixtures.join("catalog/uses.csv"))?;
            procs::run_to_end(
                bins,
                "settlement-directory",
                &[
                    "--data-dir",
                    &dir_text,
                    "import",
                    "--csv",
                    &catalog,
                    "--by",
                    "ssc-demo",
                ],
                &[],
                &data.join(format!("node-{}-directory.log", spec.admdvs)),
            )?;
            let proc = Proc::start(
                "settlement",
                bins,
                "settlement",
                &[
                    "serve",
                    "--listen",
                    &format!("127.0.0.1:{port}"),
                    "--data",
                    &dir_text,
                    "--refdata",
                    &crate::path_str(fixtures)?,
                    "--region",
                    &spec.admdvs,
                    "--regions",
                    &crate::path_str(&regions_file)?,
                ],
                &[
                    ("SETTLEMENT_PAAS", &paas),
                    ("SETTLEMENT_CONSOLE_ADMIN", &console_seed),
                ],
                &data.join(format!("node-{}.log", spec.admdvs)),
            )?;
            nodes.push(Node {
                admdvs: spec.admdvs,
                name: spec.name,
                serves: spec.serves,
                url: format!("http://127.0.0.1:{port}"),
                proc,
            });
        }
        for node in &mut nodes {
            wait_healthy(&mut node.proc, &format!("{}/health", node.url))?;
        }
        Ok(Cluster {
            nodes,
            his,
            operator,
            console_admin,
        })
    }

    /// The node serving division `admdvs` (its prefix is in the node's `serves`).
    pub fn node_for(&self, admdvs: &str) -> Result<&Node> {
        self.nodes
            .iter()
            .find(|n| n.serves.iter().any(|p| admdvs.starts_with(p.as_str())))
            .with_context(|| format!("no region node serves {admdvs}"))
    }

    /// Closes every node's open clearing window (the atomic cut); returns (node, window id).
    pub fn close_windows(&self, client: &reqwest::blocking::Client) -> Result<Vec<(String, i64)>> {
        let mut closed = Vec::new();
        for node in &self.nodes {
            let reply = self.operator.post(
                client,
                &format!("{}/region/v1/admin/close-window", node.url),
            )?;
            let id = reply["closed"]
                .as_i64()
                .with_context(|| format!("close-window at {}: {reply}", node.admdvs))?;
            closed.push((node.admdvs.clone(), id));
        }
        Ok(closed)
    }

    /// Each node's net positions toward the others: (node, counter-region, fen; + = the
    /// counter-region owes the node).
    pub fn positions(
        &self,
        client: &reqwest::blocking::Client,
    ) -> Result<Vec<(String, String, i64)>> {
        let mut out = Vec::new();
        for node in &self.nodes {
            let reply: Value = self
                .operator
                .get(client, &format!("{}/region/v1/admin/positions", node.url))?;
            for position in reply.as_array().context("positions: not a list")? {
                let counter = position["counter"]
                    .as_u64()
                    .with_context(|| format!("positions at {}: {position}", node.admdvs))?;
                let fen = position["net_fen"]
                    .as_i64()
                    .with_context(|| format!("positions at {}: {position}", node.admdvs))?;
                out.push((node.admdvs.clone(), counter.to_string(), fen));
            }
        }
        Ok(out)
    }

    /// Stops every node.
    pub fn stop(self) {
        for mut node in self.nodes {
            node.proc.stop();
        }
    }
}

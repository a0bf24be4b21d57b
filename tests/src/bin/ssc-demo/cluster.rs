//! The three regional settlement nodes (北京 110000, 天津 120000, 河北 130000), each its own
//! `settlement serve --region X --regions FILE` process with its own database (an SQLite file,
//! or a PostgreSQL database of its own), its own insured persons and the fixture reference
//! data, linked by signed HTTP as `fixtures/regions/regions.toml` describes (link keys replaced
//! by fresh ones; ports kept or replaced by free ones, [`Ports`]). Each node's operators'
//! console is seeded with an admin account under a fresh password.
//!
//! Used by the demo and by `ssc-demo cluster` (`scripts/cluster`), which starts only the nodes.

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
    /// Its operators' console's first administrator (name, password), fresh per run.
    pub console_admin: (String, String),
    /// Where its data is: the SQLite data directory, or the PostgreSQL database's name.
    pub store: String,
    /// The process.
    pub proc: Proc,
}

/// Where the nodes listen.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Ports {
    /// Each on a free loopback port (the demo, the tests).
    Free,
    /// On the ports of the regions file's `url`s (`scripts/cluster`).
    FromFile,
}

/// Each node's database.
#[derive(Clone)]
pub enum Database {
    /// An SQLite file in the node's data directory (the embedded default).
    Sqlite,
    /// A PostgreSQL database per node, `{prefix}_{admdvs}`, dropped and created afresh at start
    /// through `admin_url` (a URL of the same server whose user may create databases).
    Postgres {
        /// Any database of the server, for `CREATE DATABASE`.
        admin_url: String,
        /// Database name prefix: lowercase ASCII letters, digits and `_`, starting with a
        /// letter.
        prefix: String,
    },
}

/// How to start the cluster.
#[derive(Clone)]
pub struct ClusterOptions {
    /// Where the nodes listen.
    pub ports: Ports,
    /// Their databases.
    pub database: Database,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        Self {
            ports: Ports::Free,
            database: Database::Sqlite,
        }
    }
}

/// The cluster.
pub struct Cluster {
    /// The nodes, in the regions file's order.
    pub nodes: Vec<Node>,
    /// The HIS callers' gateway credentials (every node accepts them).
    pub his: Gateway,
    /// The operators' gateway credentials.
    pub operator: Gateway,
    /// The regions file the nodes were started with (fresh link keys).
    pub regions_file: std::path::PathBuf,
}

/// A region of the regions file.
struct RegionSpec {
    admdvs: String,
    name: String,
    serves: Vec<String>,
}

/// The port of a loopback `url` such as `http://127.0.0.1:18110`.
fn port_of(url: &str) -> Option<u16> {
    url.trim_end_matches('/').rsplit(':').next()?.parse().ok()
}

/// Writes the demo's regions file from the fixture's: each node on a free loopback port (or on
/// the file's own with [`Ports::FromFile`]), each link under a fresh random key. Returns the
/// regions and their ports.
fn write_regions(fixture: &Path, out: &Path, ports: Ports) -> Result<Vec<(RegionSpec, u16)>> {
    let text = std::fs::read_to_string(fixture)
        .with_context(|| format!("reading {}", fixture.display()))?;
    let mut file: toml::Table = text
        .parse()
        .with_context(|| format!("parsing {}", fixture.display()))?;
    let mut regions = Vec::new();
    if let Some(list) = file.get_mut("region").and_then(|v| v.as_array_mut()) {
        for region in list.iter_mut().filter_map(|r| r.as_table_mut()) {
            let port = match ports {
                Ports::Free => free_port()?,
                Ports::FromFile => region
                    .get("url")
                    .and_then(|v| v.as_str())
                    .and_then(port_of)
                    .with_context(|| {
                        format!("{}: a [[region]] without a url:port", fixture.display())
                    })?,
            };
            if ports == Ports::FromFile && std::net::TcpListener::bind(("127.0.0.1", port)).is_err()
            {
                bail!(
                    "port {port} of {} is taken (another cluster running?); --free-ports picks free ones",
                    fixture.display()
                );
            }
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

/// True for a safe PostgreSQL identifier of ours: a lowercase ASCII letter, then lowercase
/// letters, digits and `_`, at most 50 bytes (room for `_` + the region code within 63).
fn valid_prefix(prefix: &str) -> bool {
    prefix.len() <= 50
        && prefix.starts_with(|c: char| c.is_ascii_lowercase())
        && prefix
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// `url` with its database name replaced by `database` (the query, if any, kept).
pub fn with_database(url: &str, database: &str) -> Result<String> {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let scheme_end = base
        .find("://")
        .map(|i| i + 3)
        .with_context(|| "a PostgreSQL URL starts with postgres://".to_owned())?;
    let host_end = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    let mut out = format!("{}/{database}", &base[..host_end]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    Ok(out)
}

/// Drops (if present) and creates the PostgreSQL database `name` through `admin_url`.
fn fresh_postgres_database(admin_url: &str, name: &str) -> Result<()> {
    use sqlx::Connection;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut admin = sqlx::PgConnection::connect(admin_url)
            .await
            .context("connecting to PostgreSQL (is it running? scripts/ensure-postgres)")?;
        // `name` is a checked identifier (valid_prefix + a region code), never caller text.
        for statement in [
            format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            format!("CREATE DATABASE {name}"),
        ] {
            sqlx::raw_sql(sqlx::AssertSqlSafe(statement.clone()))
                .execute(&mut admin)
                .await
                .with_context(|| format!("PostgreSQL: {statement}"))?;
        }
        admin.close().await.context("closing the admin connection")
    })
}

impl Cluster {
    /// Starts one node per region of `fixtures/regions/regions.toml` under `data`.
    pub fn start(
        bins: &Path,
        data: &Path,
        fixtures: &Path,
        options: &ClusterOptions,
    ) -> Result<Cluster> {
        let regions_file = data.join("regions.toml");
        let regions = write_regions(
            &fixtures.join("regions/regions.toml"),
            &regions_file,
            options.ports,
        )?;
        if let Database::Postgres { prefix, .. } = &options.database
            && !valid_prefix(prefix)
        {
            bail!(
                "database prefix {prefix:?}: lowercase letters, digits and _, starting with a letter"
            );
        }
        let his = Gateway {
            paas_id: "demo-his".into(),
            token: random_hex(16)?,
        };
        let operator = Gateway {
            paas_id: "demo-operator".into(),
            token: random_hex(16)?,
        };
        let paas = format!(
            "{}={},{}={}",
            his.paas_id, his.token, operator.paas_id, operator.token
        );
        let mut nodes = Vec::new();
        for (spec, port) in regions {
            let dir = data.join(format!("node-{}", spec.admdvs));
            let dir_text = crate::path_str(&dir)?;
            // An empty DATABASE_URL means the SQLite file under --data (an inherited one is
            // overridden either way).
            let (database_url, store) = match &options.database {
                Database::Sqlite => (String::new(), dir_text.clone()),
                Database::Postgres { admin_url, prefix } => {
                    let name = format!("{prefix}_{}", spec.admdvs);
                    fresh_postgres_database(admin_url, &name)?;
                    (
                        with_database(admin_url, &name)?,
                        format!("PostgreSQL database {name}"),
                    )
                }
            };
            let db_env = [("DATABASE_URL", database_url.as_str())];
            // A fresh password per node and run (24 hex digits; the console wants 12 or more).
            let console_admin = ("admin".to_owned(), random_hex(12)?);
            let console_seed = format!("{}:{}", console_admin.0, console_admin.1);
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
                &db_env,
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
                &db_env,
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
                    ("DATABASE_URL", &database_url),
                ],
                &data.join(format!("node-{}.log", spec.admdvs)),
            )?;
            nodes.push(Node {
                admdvs: spec.admdvs,
                name: spec.name,
                serves: spec.serves,
                url: format!("http://127.0.0.1:{port}"),
                console_admin,
                store,
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
            regions_file,
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

    /// True when `node` serves the operators' console and its seeded admin logs in (the login
    /// answers a redirect with a session cookie); false when it serves no console.
    pub fn console_login_ok(&self, node: &Node) -> Result<bool> {
        let client = reqwest::blocking::Client::builder()
            .timeout(std::time::Duration::from_secs(15))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let url = format!("{}/console/login", node.url);
        let page = client
            .get(&url)
            .send()
            .with_context(|| format!("GET {url}"))?;
        if !page.status().is_success() {
            return Ok(false);
        }
        let (name, password) = &node.console_admin;
        let reply = client
            .post(&url)
            .form(&[("username", name.as_str()), ("password", password.as_str())])
            .send()
            .with_context(|| format!("POST {url}"))?;
        if reply.status().is_redirection() && reply.headers().contains_key("set-cookie") {
            return Ok(true);
        }
        bail!(
            "the console of {} refused its seeded admin: {}",
            node.admdvs,
            reply.status()
        )
    }

    /// Stops every node.
    pub fn stop(self) {
        for mut node in self.nodes {
            node.proc.stop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls_and_ports() {
        assert_eq!(
            with_database(
                "postgres://postgres@127.0.0.1:5432/test",
                "ssc_cluster_110000"
            )
            .ok(),
            Some("postgres://postgres@127.0.0.1:5432/ssc_cluster_110000".to_owned())
        );
        assert_eq!(
            with_database("postgres://u:p@db:5433/x?sslmode=disable", "y").ok(),
            Some("postgres://u:p@db:5433/y?sslmode=disable".to_owned())
        );
        assert_eq!(
            with_database("postgres://localhost", "y").ok(),
            Some("postgres://localhost/y".to_owned())
        );
        assert!(with_database("localhost/x", "y").is_err());
        assert_eq!(port_of("http://127.0.0.1:18110"), Some(18110));
        assert_eq!(port_of("http://127.0.0.1:18110/"), Some(18110));
        assert_eq!(port_of("http://127.0.0.1"), None);
        assert!(valid_prefix("ssc_cluster"));
        assert!(!valid_prefix("ssc-cluster"));
        assert!(!valid_prefix("1abc"));
        assert!(!valid_prefix("a; DROP DATABASE test"));
    }
}

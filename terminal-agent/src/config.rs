//! Configuration: a TOML file, then environment variables (`TERMINAL_AGENT_*`) over it, then
//! defaults. Every timeout is in milliseconds, named `*_ms`.
//!
//! ```toml
//! listen = "127.0.0.1:7788"
//! data_dir = "/var/lib/terminal-agent"
//! card_timeout_ms = 5000
//! watch_poll_ms = 250
//! terminal_no = "T0001"          # 终端机编号 in iReadCardBas
//! device_no = "D0001"            # 终端设备号
//! [hsm]
//! mode = "http"                  # "none" | "in-process" | "http"
//! url = "http://127.0.0.1:8443"
//! token_env = "TERMINAL_AGENT_HSM_TOKEN"
//! external_auth_alias = "ssc-ext-auth"
//! internal_auth_alias = "ssc-int-auth"
//! [switch]
//! url = "http://127.0.0.1:9000"
//! paas_id = "kiosk01"            # x-tif-paasid; the token comes from the variable below
//! paas_token_env = "TERMINAL_AGENT_PAAS_TOKEN"
//! fixmedins_code = "H11010500001"
//! fixmedins_name = "..."
//! mdtrtarea_admvs = "110000"
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The TOML is malformed or has unknown keys.
    #[error("parsing {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// A value is out of range or an environment variable is malformed.
    #[error("invalid {key}: {reason}")]
    Invalid {
        /// The key or variable.
        key: String,
        /// Why.
        reason: &'static str,
    },
}

/// How the agent reaches the HSM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum HsmMode {
    /// No HSM: 3.00 cards cannot be read past EF05.
    #[default]
    None,
    /// The `hsm` library in this process (key store in `hsm.data_dir`, LMK from `hsm.lmk_file`
    /// or `HSM_LMK_HEX`).
    InProcess,
    /// `hsm serve` over HTTP.
    Http,
}

/// The `[hsm]` table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HsmConfig {
    /// How the HSM is reached.
    pub mode: HsmMode,
    /// Base URL of `hsm serve` (http mode).
    pub url: String,
    /// Name of the environment variable holding the Bearer token (never the token itself).
    pub token_env: String,
    /// Key store directory (in-process mode).
    pub data_dir: Option<PathBuf>,
    /// LMK file (in-process mode); `HSM_LMK_HEX` when absent.
    pub lmk_file: Option<PathBuf>,
    /// Alias of the RKSSSE external-authentication master key (usage `11`).
    pub external_auth_alias: String,
    /// Alias of the internal-authentication master key (usage `10`); empty to skip the check.
    pub internal_auth_alias: String,
    /// Timeout of one HSM call.
    pub timeout_ms: u64,
}

impl Default for HsmConfig {
    fn default() -> Self {
        Self {
            mode: HsmMode::None,
            url: "http://127.0.0.1:8443".into(),
            token_env: "TERMINAL_AGENT_HSM_TOKEN".into(),
            data_dir: None,
            lmk_file: None,
            external_auth_alias: "ssc-ext-auth".into(),
            internal_auth_alias: "ssc-int-auth".into(),
            timeout_ms: 2_000,
        }
    }
}

/// The `[switch]` table: the settlement switch (issue 5; a stand-in until it exists).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SwitchConfig {
    /// Base URL; empty disables the journal's sender.
    pub url: String,
    /// Timeout of one call; past it the outcome is unknown.
    pub timeout_ms: u64,
    /// First retry delay of a reversal; doubles up to `retry_max_ms`.
    pub retry_initial_ms: u64,
    /// Longest delay between two reversal attempts.
    pub retry_max_ms: u64,
    /// 定点医药机构编号 (12 characters), the first part of every msgid.
    pub fixmedins_code: String,
    /// 就医地医保区划 (6 digits).
    pub mdtrtarea_admvs: String,
    /// 定点医药机构名称 in every envelope.
    pub fixmedins_name: String,
    /// The gateway's `x-tif-paasid`; empty: no gateway headers are sent.
    pub paas_id: String,
    /// Name of the environment variable holding the gateway token (never the token itself).
    pub paas_token_env: String,
}

impl Default for SwitchConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            timeout_ms: 10_000,
            retry_initial_ms: 500,
            retry_max_ms: 60_000,
            fixmedins_code: "H00000000000".into(),
            mdtrtarea_admvs: "120000".into(),
            fixmedins_name: String::new(),
            paas_id: String::new(),
            paas_token_env: "TERMINAL_AGENT_PAAS_TOKEN".into(),
        }
    }
}

/// The agent's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// HTTP listen address; must be a loopback address.
    pub listen: SocketAddr,
    /// Directory of the journal database.
    pub data_dir: PathBuf,
    /// Longest wait for one card job (a read, a PIN check), queueing included.
    pub card_timeout_ms: u64,
    /// Longest wait of one `SCardGetStatusChange` in the watcher.
    pub watch_poll_ms: u64,
    /// 终端机编号 printed in `iReadCardBas`.
    pub terminal_no: String,
    /// 终端设备号 printed in `iReadCardBas`.
    pub device_no: String,
    /// Reader used by the unified interface's functions when the call names none.
    pub default_reader: Option<String>,
    /// The HSM.
    pub hsm: HsmConfig,
    /// The settlement switch.
    pub switch: SwitchConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 7788)),
            data_dir: PathBuf::from("terminal-agent-data"),
            card_timeout_ms: 5_000,
            watch_poll_ms: 250,
            terminal_no: String::new(),
            device_no: String::new(),
            default_reader: None,
            hsm: HsmConfig::default(),
            switch: SwitchConfig::default(),
        }
    }
}

/// Upper bound of every configured timeout (10 minutes).
pub const TIMEOUT_MS_MAX: u64 = 600_000;

impl Config {
    /// Reads `path` (if given), then applies the environment.
    ///
    /// Errors: [`ConfigError`].
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let mut config = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_owned(),
                    source,
                })?;
                Self::from_toml(&text).map_err(|message| ConfigError::Parse {
                    path: path.to_owned(),
                    message,
                })?
            }
            None => Self::default(),
        };
        config.apply_env(|key| std::env::var(key).ok())?;
        config.validate()?;
        Ok(config)
    }

    /// Parses TOML text (no environment). Errors: the parser's message.
    pub fn from_toml(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| e.message().to_owned())
    }

    /// Applies `TERMINAL_AGENT_LISTEN`, `_DATA_DIR`, `_CARD_TIMEOUT_MS`, `_HSM_MODE`,
    /// `_HSM_URL`, `_SWITCH_URL`, `_SWITCH_PAAS_ID`, `_SWITCH_RETRY_INITIAL_MS`,
    /// `_SWITCH_RETRY_MAX_MS`, `_DEFAULT_READER` from `get`.
    ///
    /// Errors: [`ConfigError::Invalid`] for a malformed value.
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        let invalid = |key: &str, reason| ConfigError::Invalid {
            key: key.to_owned(),
            reason,
        };
        if let Some(v) = get("TERMINAL_AGENT_LISTEN") {
            self.listen = v
                .parse()
                .map_err(|_| invalid("TERMINAL_AGENT_LISTEN", "not host:port"))?;
        }
        if let Some(v) = get("TERMINAL_AGENT_DATA_DIR") {
            self.data_dir = PathBuf::from(v);
        }
        if let Some(v) = get("TERMINAL_AGENT_CARD_TIMEOUT_MS") {
            self.card_timeout_ms = v
                .parse()
                .map_err(|_| invalid("TERMINAL_AGENT_CARD_TIMEOUT_MS", "not a number"))?;
        }
        if let Some(v) = get("TERMINAL_AGENT_HSM_MODE") {
            self.hsm.mode = match v.as_str() {
                "none" => HsmMode::None,
                "in-process" => HsmMode::InProcess,
                "http" => HsmMode::Http,
                _ => {
                    return Err(invalid(
                        "TERMINAL_AGENT_HSM_MODE",
                        "not none|in-process|http",
                    ));
                }
            };
        }
        if let Some(v) = get("TERMINAL_AGENT_HSM_URL") {
            self.hsm.url = v;
        }
        if let Some(v) = get("TERMINAL_AGENT_SWITCH_URL") {
            self.switch.url = v;
        }
        if let Some(v) = get("TERMINAL_AGENT_SWITCH_PAAS_ID") {
            self.switch.paas_id = v;
        }
        for (key, slot) in [
            (
                "TERMINAL_AGENT_SWITCH_RETRY_INITIAL_MS",
                &mut self.switch.retry_initial_ms,
            ),
            (
                "TERMINAL_AGENT_SWITCH_RETRY_MAX_MS",
                &mut self.switch.retry_max_ms,
            ),
        ] {
            if let Some(v) = get(key) {
                *slot = v.parse().map_err(|_| invalid(key, "not a number"))?;
            }
        }
        if let Some(v) = get("TERMINAL_AGENT_DEFAULT_READER") {
            self.default_reader = Some(v);
        }
        Ok(())
    }

    /// Checks the limits: loopback listen address, `switch.fixmedins_code` of 12 ASCII letters
    /// or digits, timeouts in 1..=[`TIMEOUT_MS_MAX`].
    ///
    /// Errors: [`ConfigError::Invalid`].
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !self.listen.ip().is_loopback() {
            return Err(ConfigError::Invalid {
                key: "listen".into(),
                reason: "the agent listens on a loopback address only",
            });
        }
        // Each msgid starts with this code (medical-settlement.md §1.1: code(12) +
        // yyyyMMddHHmmss + 4 digits), and the settlement service refuses a msgid that is not
        // letters and digits: caught here, at start, instead of on every message.
        let code = &self.switch.fixmedins_code;
        if code.len() != crate::journal::envelope::FIXMEDINS_CODE_LEN
            || !code.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return Err(ConfigError::Invalid {
                key: "switch.fixmedins_code".into(),
                reason: "must be 12 ASCII letters or digits (the institution's national code)",
            });
        }
        for (key, value) in [
            ("card_timeout_ms", self.card_timeout_ms),
            ("watch_poll_ms", self.watch_poll_ms),
            ("hsm.timeout_ms", self.hsm.timeout_ms),
            ("switch.timeout_ms", self.switch.timeout_ms),
            ("switch.retry_initial_ms", self.switch.retry_initial_ms),
            ("switch.retry_max_ms", self.switch.retry_max_ms),
        ] {
            if value == 0 || value > TIMEOUT_MS_MAX {
                return Err(ConfigError::Invalid {
                    key: key.into(),
                    reason: "must be 1..=600000 ms",
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_then_environment() {
        let mut c = Config::from_toml(
            "listen = \"127.0.0.1:9999\"\ncard_timeout_ms = 1500\n[hsm]\nmode = \"http\"\n",
        )
        .unwrap();
        assert_eq!(c.listen.port(), 9999);
        assert_eq!(c.card_timeout_ms, 1500);
        assert_eq!(c.hsm.mode, HsmMode::Http);
        c.apply_env(|k| (k == "TERMINAL_AGENT_CARD_TIMEOUT_MS").then(|| "700".to_owned()))
            .unwrap();
        assert_eq!(c.card_timeout_ms, 700);
        c.apply_env(|k| match k {
            "TERMINAL_AGENT_SWITCH_RETRY_INITIAL_MS" => Some("200".to_owned()),
            "TERMINAL_AGENT_SWITCH_RETRY_MAX_MS" => Some("1000".to_owned()),
            _ => None,
        })
        .unwrap();
        assert_eq!(
            (c.switch.retry_initial_ms, c.switch.retry_max_ms),
            (200, 1000)
        );
        assert!(
            c.apply_env(|k| (k == "TERMINAL_AGENT_SWITCH_RETRY_MAX_MS").then(|| "1s".to_owned()))
                .is_err()
        );
        c.validate().unwrap();
    }

    #[test]
    fn refuses_non_loopback_unknown_keys_and_zero_timeouts() {
        let c = Config::from_toml("listen = \"0.0.0.0:7788\"").unwrap();
        assert!(c.validate().is_err());
        assert!(Config::from_toml("lisen = \"127.0.0.1:1\"").is_err());
        let c = Config::from_toml("card_timeout_ms = 0").unwrap();
        assert!(c.validate().is_err());
        for code in ["H1101050000", "H11010500001X", "H1101-500001"] {
            let c = Config::from_toml(&format!("[switch]\nfixmedins_code = \"{code}\"")).unwrap();
            assert!(c.validate().is_err(), "{code}");
        }
        let c = Config::from_toml("[switch]\nfixmedins_code = \"H11010500001\"").unwrap();
        c.validate().unwrap();
    }
}

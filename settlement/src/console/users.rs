//! Console accounts, logins and sessions (migrations/*/0501_console.sql).
//!
//! Passwords: argon2id (RFC 9106) with the `argon2` crate's default parameters (m = 19 MiB,
//! t = 2, p = 1, OWASP's minimum), a 16-byte random salt, stored as a PHC string. A login
//! checks the hash even for an unknown account (against a fixed dummy hash), so timing does not
//! tell which accounts exist.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use ring::rand::{SecureRandom, SystemRandom};
use sha2::{Digest, Sha256};

use super::Console;
use crate::identity::{now_ms, ordered_id};
use crate::store::dispatch;

/// Shortest password, characters.
pub const PASSWORD_CHARS_MIN: usize = 12;
/// Longest password, bytes (bounds the hashing work an attacker can ask for).
pub const PASSWORD_BYTES_MAX: usize = 256;

/// A console role, least to most powerful.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Dashboards only.
    Viewer,
    /// + reversals, reconciliation, audited holder lookups, lost cards.
    Operator,
    /// + accounts, partner applications.
    Admin,
}

impl Role {
    /// The stored code.
    pub fn code(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    /// Parses [`Role::code`].
    pub fn parse(code: &str) -> Option<Role> {
        [Role::Viewer, Role::Operator, Role::Admin]
            .into_iter()
            .find(|role| role.code() == code)
    }
}

/// Console errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConsoleError {
    /// Wrong name or password (one message for both).
    #[error("wrong name or password")]
    BadLogin,
    /// Too many failed logins: locked for a while.
    #[error("account locked after repeated failures; try again later")]
    Locked,
    /// A field is malformed.
    #[error("{0}")]
    BadField(&'static str),
    /// The account exists.
    #[error("that account exists")]
    Exists,
    /// Hashing or randomness failed.
    #[error("crypto: {0}")]
    Crypto(&'static str),
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

/// A live session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    /// The account.
    pub username: String,
    /// Its role.
    pub role: Role,
    /// The form token.
    pub csrf: String,
}

fn random_hex(bytes: usize) -> Result<String, ConsoleError> {
    let mut buffer = vec![0u8; bytes];
    SystemRandom::new()
        .fill(&mut buffer)
        .map_err(|_| ConsoleError::Crypto("no system randomness"))?;
    Ok(hex::encode(buffer))
}

/// argon2id PHC string of `password`. Errors: `BadField` (length), `Crypto`.
pub fn hash_password(password: &str) -> Result<String, ConsoleError> {
    if password.chars().count() < PASSWORD_CHARS_MIN || password.len() > PASSWORD_BYTES_MAX {
        return Err(ConsoleError::BadField(
            "a password has 12 to 256 characters",
        ));
    }
    let mut salt = [0u8; 16];
    SystemRandom::new()
        .fill(&mut salt)
        .map_err(|_| ConsoleError::Crypto("no system randomness"))?;
    let salt = SaltString::encode_b64(&salt).map_err(|_| ConsoleError::Crypto("salt"))?;
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|_| ConsoleError::Crypto("argon2"))?
        .to_string())
}

fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|hash| {
        Argon2::default()
            .verify_password(password.as_bytes(), &hash)
            .is_ok()
    })
}

/// A hash no password matches, checked for unknown accounts (same work as a real check).
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$\
                          0uj2gBeOITa3jqjVrcjV5hY2uG0eZcFI0FmkMEeH4cA";

fn check_username(username: &str) -> Result<(), ConsoleError> {
    let ok = !username.is_empty()
        && username.len() <= 64
        && username
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'@' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(ConsoleError::BadField(
            "an account name has 1 to 64 letters, digits or . _ @ -",
        ))
    }
}

type UserRow = (String, String, i64, i64);

impl Console {
    /// Creates an account. Errors: `BadField`, `Exists`, `Crypto`, database.
    pub async fn create_user(
        &self,
        username: &str,
        role: Role,
        password: &str,
        created_by: &str,
    ) -> Result<(), ConsoleError> {
        check_username(username)?;
        let hash = hash_password(password)?;
        let _turn = self.gate.enter().await;
        let inserted = dispatch!(&self.store, pool => {
            sqlx::query(
                "INSERT INTO console_users (username, role, password_hash, created_by, \
                 created_at_ms) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (username) DO NOTHING",
            )
            .bind(username)
            .bind(role.code())
            .bind(&hash)
            .bind(created_by)
            .bind(now_ms())
            .execute(pool)
            .await?
            .rows_affected()
        });
        drop(_turn);
        if inserted == 0 {
            return Err(ConsoleError::Exists);
        }
        self.audit(
            created_by,
            "create_user",
            &format!("{username} as {}", role.code()),
        )
        .await?;
        Ok(())
    }

    /// Creates the admin account `username` unless it exists (the seed from the environment).
    /// Errors: as [`Console::create_user`] but `Exists`.
    pub async fn ensure_admin(&self, username: &str, password: &str) -> Result<(), ConsoleError> {
        match self
            .create_user(username, Role::Admin, password, "seed")
            .await
        {
            Err(ConsoleError::Exists) | Ok(()) => Ok(()),
            Err(other) => Err(other),
        }
    }

    /// Accounts and roles, by name.
    pub async fn users(&self) -> Result<Vec<(String, Role)>, ConsoleError> {
        let rows: Vec<(String, String)> = dispatch!(&self.store, pool => {
            sqlx::query_as("SELECT username, role FROM console_users ORDER BY username LIMIT 1000")
                .fetch_all(pool)
                .await?
        });
        Ok(rows
            .into_iter()
            .filter_map(|(name, role)| Some((name, Role::parse(&role)?)))
            .collect())
    }

    /// Checks a login; on success opens a session and returns its cookie token and info.
    /// Errors: `BadLogin`, `Locked`, database.
    pub async fn login(
        &self,
        username: &str,
        password: &str,
    ) -> Result<(String, SessionInfo), ConsoleError> {
        let now = now_ms();
        let row: Option<UserRow> = if check_username(username).is_ok() {
            dispatch!(&self.store, pool => {
                sqlx::query_as(
                    "SELECT role, password_hash, failed_logins, locked_until_ms FROM console_users \
                     WHERE username = $1",
                )
                .bind(username)
                .fetch_optional(pool)
                .await?
            })
        } else {
            None
        };
        let too_long = password.len() > PASSWORD_BYTES_MAX;
        let Some((role, phc, _failed, locked_until_ms)) = row else {
            let _ = verify_password(password, DUMMY_HASH);
            self.audit(username, "login_refused", "unknown account")
                .await?;
            return Err(ConsoleError::BadLogin);
        };
        if locked_until_ms > now {
            self.audit(username, "login_refused", "locked").await?;
            return Err(ConsoleError::Locked);
        }
        if too_long || !verify_password(password, &phc) {
            let _turn = self.gate.enter().await;
            dispatch!(&self.store, pool => {
                sqlx::query(
                    "UPDATE console_users SET failed_logins = failed_logins + 1, \
                     locked_until_ms = CASE WHEN failed_logins + 1 >= $1 THEN $2 \
                     ELSE locked_until_ms END WHERE username = $3",
                )
                .bind(self.options.failed_logins_max)
                .bind(now + self.options.lock_ms)
                .bind(username)
                .execute(pool)
                .await?;
            });
            drop(_turn);
            self.audit(username, "login_refused", "wrong password")
                .await?;
            return Err(ConsoleError::BadLogin);
        }
        let role = Role::parse(&role).ok_or(ConsoleError::BadField("stored role"))?;
        let token = random_hex(32)?;
        let csrf = random_hex(16)?;
        let token_sha256 = Sha256::digest(token.as_bytes()).to_vec();
        {
            let _turn = self.gate.enter().await;
            dispatch!(&self.store, pool => {
                sqlx::query(
                    "UPDATE console_users SET failed_logins = 0, locked_until_ms = 0 \
                     WHERE username = $1",
                )
                .bind(username)
                .execute(pool)
                .await?;
                sqlx::query(
                    "INSERT INTO console_sessions (token_sha256, username, csrf, created_at_ms, \
                     expires_at_ms) VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(&token_sha256)
                .bind(username)
                .bind(&csrf)
                .bind(now)
                .bind(now + self.options.session_ttl_ms)
                .execute(pool)
                .await?;
            });
        }
        self.audit(username, "login", role.code()).await?;
        Ok((
            token,
            SessionInfo {
                username: username.to_owned(),
                role,
                csrf,
            },
        ))
    }

    /// The live session of a cookie token, if any (expired and revoked ones are not).
    pub async fn session(&self, token: &str) -> Result<Option<SessionInfo>, ConsoleError> {
        if token.len() != 64 {
            return Ok(None);
        }
        let token_sha256 = Sha256::digest(token.as_bytes()).to_vec();
        let row: Option<(String, String, String)> = dispatch!(&self.store, pool => {
            sqlx::query_as(
                "SELECT s.username, u.role, s.csrf FROM console_sessions s \
                 JOIN console_users u ON u.username = s.username \
                 WHERE s.token_sha256 = $1 AND s.revoked = 0 AND s.expires_at_ms > $2",
            )
            .bind(&token_sha256)
            .bind(now_ms())
            .fetch_optional(pool)
            .await?
        });
        Ok(row.and_then(|(username, role, csrf)| {
            Some(SessionInfo {
                username,
                role: Role::parse(&role)?,
                csrf,
            })
        }))
    }

    /// Ends the session of a cookie token.
    pub async fn logout(&self, token: &str) -> Result<(), ConsoleError> {
        let token_sha256 = Sha256::digest(token.as_bytes()).to_vec();
        let _turn = self.gate.enter().await;
        dispatch!(&self.store, pool => {
            sqlx::query("UPDATE console_sessions SET revoked = 1 WHERE token_sha256 = $1")
                .bind(&token_sha256)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Appends to the console's audit log.
    pub async fn audit(
        &self,
        username: &str,
        action: &str,
        detail: &str,
    ) -> Result<(), ConsoleError> {
        let now = now_ms();
        let id = ordered_id(now).map_err(|_| ConsoleError::Crypto("no system randomness"))?;
        let username: String = username.chars().take(64).collect();
        let detail: String = detail.chars().take(400).collect();
        let _turn = self.gate.enter().await;
        dispatch!(&self.store, pool => {
            sqlx::query(
                "INSERT INTO console_audit (audit_id, username, action, detail, at_ms) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&id)
            .bind(&username)
            .bind(action)
            .bind(&detail)
            .bind(now)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// The console's audit log, newest first.
    pub async fn audit_log(
        &self,
        limit: i64,
    ) -> Result<Vec<(String, String, String, i64)>, ConsoleError> {
        Ok(dispatch!(&self.store, pool => {
            sqlx::query_as(
                "SELECT username, action, detail, at_ms FROM console_audit \
                 ORDER BY audit_id DESC LIMIT $1",
            )
            .bind(limit.clamp(1, 500))
            .fetch_all(pool)
            .await?
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_to_argon2id_and_verify() {
        let phc = hash_password("correct horse battery").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(verify_password("correct horse battery", &phc));
        assert!(!verify_password("correct horse batterz", &phc));
        assert!(hash_password("short").is_err());
        assert!(!verify_password("anything", DUMMY_HASH));
        assert_eq!(Role::parse("operator"), Some(Role::Operator));
        assert!(Role::Viewer < Role::Operator && Role::Operator < Role::Admin);
    }
}

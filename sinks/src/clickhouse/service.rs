//! The ClickHouse client: the HTTP interface (port 8123), `JSONEachRow` inserts, and the
//! versioned migrations in `migrations/` applied at start.
//!
//! Everything here runs on ClickHouse 18.16 (what the test machine has) and on a current server
//! (docker compose): no `DateTime64`, `Map`, `Bool`, `TTL` or codecs in the base schema.
//! Migrations are numbered files; `{db}` is the configured database. [`MODERN`] statements (TTL)
//! are added on servers that know them. Applied versions are
//! recorded in `{db}.schema_migrations`, so a restart applies only what is new.
//!
//! | answer | meaning | what the sink does |
//! |---|---|---|
//! | 200 | written | store the batch's offsets |
//! | no answer, 5xx | ClickHouse unavailable | stop reading, retry with backoff: nothing is lost |
//! | other 4xx | our rows or DDL are wrong | stop the sink (a bug to fix, not data to drop) |

use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;
use wabaflow_pipeline::config::ClickHouseConfig;

/// The migrations, in order.
pub const MIGRATIONS: &[(u32, &str, &str)] = &[
    (1, "events", include_str!("migrations/0001_events.sql")),
    (2, "rollups", include_str!("migrations/0002_rollups.sql")),
    (3, "wallet", include_str!("migrations/0003_wallet.sql")),
];

/// Improvements only newer servers understand, applied at every start when `version()` allows
/// (idempotent): (minimum major version, statement). Raw events are kept 400 days; the rollups,
/// which the dashboards read for long ranges, are kept.
pub const MODERN: &[(u32, &str)] = &[
    (
        20,
        "ALTER TABLE {db}.message_events MODIFY TTL day + INTERVAL 400 DAY",
    ),
    (
        20,
        "ALTER TABLE {db}.status_events MODIFY TTL day + INTERVAL 400 DAY",
    ),
];

/// The modern-only statements for a server of `major` version.
pub fn modern_statements(major: u32, database: &str) -> Vec<String> {
    MODERN
        .iter()
        .filter(|(min, _)| major >= *min)
        .map(|(_, sql)| sql.replace("{db}", database))
        .collect()
}

#[derive(Debug, thiserror::Error)]
pub enum ClickHouseError {
    #[error("ClickHouse unavailable: {0}")]
    Unavailable(String),
    #[error("ClickHouse refused ({status}): {message}")]
    Refused { status: u16, message: String },
}

/// The body of one `INSERT … FORMAT JSONEachRow`: rows encoded one by one as they are made, so a
/// batch never holds its rows as values too. Sent as it is, however often the insert is tried.
#[derive(Debug, Default)]
pub struct JsonEachRow {
    body: Vec<u8>,
    /// The body once sent: shared with each request, never copied.
    sent: Option<Bytes>,
    count: usize,
}

impl JsonEachRow {
    /// Room for about `bytes` of rows (reserved, not touched: it costs no memory until written).
    pub fn with_capacity(bytes: usize) -> Self {
        Self {
            body: Vec::with_capacity(bytes),
            sent: None,
            count: 0,
        }
    }

    /// Appends a row. A body is complete once sent: rows are added while a batch gathers, and
    /// only a gathered batch is written.
    pub fn push<R: Serialize>(&mut self, row: &R) -> Result<(), ClickHouseError> {
        debug_assert!(self.sent.is_none(), "a row added to a body already sent");
        wabaflow_schemas::json::to_writer(&mut self.body, row)
            .map_err(|err| ClickHouseError::Unavailable(err.to_string()))?;
        self.body.push(b'\n');
        self.count += 1;
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The body to send: the rows' bytes, frozen at the first call.
    fn bytes(&mut self) -> Bytes {
        self.sent
            .get_or_insert_with(|| Bytes::from(std::mem::take(&mut self.body)))
            .clone()
    }
}

#[derive(Clone)]
pub struct ClickHouseClient {
    http: reqwest::Client,
    url: String,
    database: String,
    user: String,
    password: String,
}

impl ClickHouseClient {
    pub fn new(config: &ClickHouseConfig) -> Result<Self, reqwest::Error> {
        Ok(Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_millis(config.timeout_ms))
                .build()?,
            url: config.url.trim_end_matches('/').to_owned(),
            database: config.database.clone(),
            user: config.user.clone(),
            password: config.password.expose().to_owned(),
        })
    }

    pub fn database(&self) -> &str {
        &self.database
    }

    /// Runs `sql`; the response body (TabSeparated unless the query names a format).
    pub async fn query(&self, sql: &str) -> Result<String, ClickHouseError> {
        self.post(sql.to_owned().into_bytes(), None).await
    }

    /// Inserts `rows` (JSON objects) into `table` of the database, in one request.
    pub async fn insert<R: Serialize>(
        &self,
        table: &str,
        rows: &[R],
    ) -> Result<(), ClickHouseError> {
        let mut body = JsonEachRow::default();
        for row in rows {
            body.push(row)?;
        }
        self.insert_rows(table, &mut body).await
    }

    /// Inserts rows already encoded into `table` of the database, in one request; the same rows
    /// again when called again (a retry).
    pub async fn insert_rows(
        &self,
        table: &str,
        rows: &mut JsonEachRow,
    ) -> Result<(), ClickHouseError> {
        if rows.is_empty() {
            return Ok(());
        }
        let query = format!("INSERT INTO {}.{table} FORMAT JSONEachRow", self.database);
        self.post(rows.bytes(), Some(&query)).await.map(|_| ())
    }

    async fn post(
        &self,
        body: impl Into<reqwest::Body>,
        query: Option<&str>,
    ) -> Result<String, ClickHouseError> {
        let mut request = self
            .http
            .post(&self.url)
            .header("X-ClickHouse-User", &self.user)
            .body(body);
        if !self.password.is_empty() {
            request = request.header("X-ClickHouse-Key", &self.password);
        }
        if let Some(query) = query {
            request = request.query(&[("query", query)]);
        }
        let response = request
            .send()
            .await
            .map_err(|err| ClickHouseError::Unavailable(err.to_string()))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|err| ClickHouseError::Unavailable(err.to_string()))?;
        if status.is_success() {
            Ok(text)
        } else if status.is_server_error() {
            Err(ClickHouseError::Unavailable(format!(
                "{status}: {}",
                text.chars().take(300).collect::<String>()
            )))
        } else {
            Err(ClickHouseError::Refused {
                status: status.as_u16(),
                message: text.chars().take(500).collect(),
            })
        }
    }

    /// `(major, minor)` of the server.
    pub async fn version(&self) -> Result<(u32, u32), ClickHouseError> {
        let text = self.query("SELECT version()").await?;
        let mut parts = text
            .trim()
            .split('.')
            .map(|p| p.parse::<u32>().unwrap_or(0));
        Ok((parts.next().unwrap_or(0), parts.next().unwrap_or(0)))
    }

    /// Creates the database and applies the migrations not applied yet; returns those applied.
    pub async fn migrate(&self) -> Result<Vec<u32>, ClickHouseError> {
        let db = &self.database;
        self.query(&format!("CREATE DATABASE IF NOT EXISTS {db}"))
            .await?;
        self.query(&format!(
            "CREATE TABLE IF NOT EXISTS {db}.schema_migrations (version UInt32, name String, applied_at DateTime) ENGINE = MergeTree() ORDER BY version"
        ))
        .await?;
        let applied = self
            .query(&format!("SELECT version FROM {db}.schema_migrations"))
            .await?;
        let applied: Vec<u32> = applied
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect();
        let mut done = Vec::new();
        for (version, name, sql) in MIGRATIONS {
            if applied.contains(version) {
                continue;
            }
            // Comments first (they may contain `;`), then one statement per `;`.
            let sql = sql
                .replace("{db}", db)
                .lines()
                .filter(|l| !l.trim_start().starts_with("--"))
                .collect::<Vec<_>>()
                .join("\n");
            for statement in sql.split(';').filter(|s| !s.trim().is_empty()) {
                self.query(statement).await?;
            }
            self.query(&format!(
                "INSERT INTO {db}.schema_migrations (version, name, applied_at) VALUES ({version}, '{name}', now())"
            ))
            .await?;
            done.push(*version);
        }
        let (major, _) = self.version().await?;
        for statement in modern_statements(major, db) {
            self.query(&statement).await?;
        }
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modern_statements_wait_for_a_server_that_knows_them() {
        assert!(modern_statements(18, "w").is_empty(), "18.16 has no TTL");
        let modern = modern_statements(24, "w");
        assert_eq!(modern.len(), MODERN.len());
        assert!(modern[0].starts_with("ALTER TABLE w.message_events MODIFY TTL"));
    }
}

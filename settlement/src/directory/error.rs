//! Errors of the application directory: a bad field ([`FieldError`]), a bad import file
//! ([`ImportError`], with the CSV line), and the library's [`DirectoryError`]. Messages name the
//! field and the line, never echo the offending text (an imported file is external input).

/// A field of a use that does not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FieldError {
    /// The number is not 1-16 ASCII letters, digits or `-`.
    #[error("number: 1-16 ASCII letters, digits or '-'")]
    Number,
    /// The category is not one of the directory's categories.
    #[error(
        "category: not one of 就业创业, 社会保险, 劳动关系, 人事人才, 医疗保障, 金融服务, 公共服务"
    )]
    Category,
    /// A usage mode is not one of the seven 用卡方式.
    #[error("modes: not one of 身份凭证, 信息记录, 自助查询, 就医结算, 缴费, 待遇领取, 金融支付")]
    Mode,
    /// A channel is not window, kiosk, web, app or e-card.
    #[error("channels: not one of window, kiosk, web, app, e-card")]
    Channel,
    /// A region is not `national` or 6 digits.
    #[error("regions: not 'national' or a 6-digit division code")]
    Region,
    /// An operation is not `service:name`.
    #[error("operations: not 'service:name' (ASCII letters, digits, '_', '.', '-')")]
    Operation,
    /// The status is not `sourced` or `illustrative`.
    #[error("status: not 'sourced' or 'illustrative'")]
    Status,
    /// The name is empty, too long or has control characters.
    #[error("name: 1-64 characters without control characters")]
    Name,
    /// The source URL is not http(s), or missing on a sourced row.
    #[error("source_url: an http(s) URL is required for a sourced row")]
    SourceUrl,
    /// The source reference or the note is too long or has control characters.
    #[error("source_ref/note: at most 500 characters without control characters")]
    Note,
    /// A list field has too many values.
    #[error("too many values in a list field")]
    TooMany,
}

/// Why an import file was refused. Nothing is written when any row is bad.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    /// The file is larger than `IMPORT_BYTES_MAX`.
    #[error("the file is larger than {max_bytes} bytes")]
    TooLarge {
        /// The limit, bytes.
        max_bytes: usize,
    },
    /// The file has more rows than `IMPORT_ROWS_MAX`.
    #[error("the file has more than {max_rows} rows")]
    TooManyRows {
        /// The limit, rows.
        max_rows: usize,
    },
    /// The file is not UTF-8 (save it as UTF-8; a leading BOM is accepted).
    #[error("the file is not UTF-8")]
    NotUtf8,
    /// The header row is not the directory's column list.
    #[error("the header must be: {expected}")]
    Header {
        /// The expected header.
        expected: &'static str,
    },
    /// The CSV structure is broken (quotes, field count) at this line.
    #[error("line {line}: malformed CSV")]
    Csv {
        /// 1-based line number.
        line: u64,
    },
    /// A field of the row starting at this line does not parse.
    #[error("line {line}: {field}")]
    Field {
        /// 1-based line number.
        line: u64,
        /// What is wrong.
        field: FieldError,
    },
    /// A number appears twice.
    #[error("line {line}: number repeats an earlier row")]
    DuplicateNumber {
        /// 1-based line number of the repeat.
        line: u64,
    },
    /// The `by` name is not 1-64 ASCII letters, digits or `._@-` (an account id, published with
    /// the version: never a person's name or ID number).
    #[error("by: 1-64 ASCII letters, digits or '._@-' (an operator account id, it is published)")]
    By,
    /// The file has no rows.
    #[error("the file has no rows")]
    Empty,
}

/// An error of the directory library.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DirectoryError {
    /// The import file was refused.
    #[error(transparent)]
    Import(#[from] ImportError),
    /// The database failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// A stored row does not parse (the named column): the database was changed outside the
    /// directory.
    #[error("corrupt directory row: {0}")]
    Corrupt(&'static str),
    /// Another import committed the same version number first; run the import again.
    #[error("another import committed first; run it again")]
    Concurrent,
}

/// Result of the directory library.
pub type Result<T, E = DirectoryError> = std::result::Result<T, E>;

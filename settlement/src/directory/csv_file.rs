//! The directory's CSV format (import and export): UTF-8 (a BOM is skipped), one header row, one
//! use per row; list fields separate values with `|`. The whole file is checked before anything
//! is written, and every error names its line.
//!
//! ```text
//! number,category,name,modes,channels,regions,operations,status,source_url,source_ref,note
//! P001,就业创业,就业失业登记,身份凭证|信息记录,window,,,sourced,https://…,app-catalog.md §4,…
//! ```

use std::collections::HashSet;

use super::error::{FieldError, ImportError};
use super::model::{
    CardUse, Category, Channel, NAME_CHARS_MAX, NOTE_CHARS_MAX, OPERATIONS_PER_USE_MAX, Operation,
    REGIONS_PER_USE_MAX, Region, Status, UsageMode, UseNumber, source_url_field, text_field,
};

/// The header row, column by column.
pub const CSV_HEADER: &str =
    "number,category,name,modes,channels,regions,operations,status,source_url,source_ref,note";
/// Largest import file, bytes (the official list is about a hundred rows).
pub const IMPORT_BYTES_MAX: usize = 4 * 1024 * 1024;
/// Most rows in an import file.
pub const IMPORT_ROWS_MAX: usize = 10_000;
/// Separator of values inside a list field.
pub const LIST_SEPARATOR: char = '|';

const COLUMNS: usize = 11;

/// Parses a whole file. Errors: see [`ImportError`]; nothing is returned unless every row is good.
pub fn parse_csv(bytes: &[u8]) -> Result<Vec<CardUse>, ImportError> {
    if bytes.len() > IMPORT_BYTES_MAX {
        return Err(ImportError::TooLarge {
            max_bytes: IMPORT_BYTES_MAX,
        });
    }
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    if std::str::from_utf8(bytes).is_err() {
        return Err(ImportError::NotUtf8);
    }
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(bytes);
    let mut records = reader.records();
    let header_ok = match records.next() {
        Some(Ok(header)) => {
            header.len() == COLUMNS && header.iter().map(str::trim).eq(CSV_HEADER.split(','))
        }
        _ => false,
    };
    if !header_ok {
        return Err(ImportError::Header {
            expected: CSV_HEADER,
        });
    }
    let mut uses = Vec::new();
    let mut seen = HashSet::new();
    for record in records {
        let record = record.map_err(|error| ImportError::Csv {
            line: error.position().map_or(0, csv::Position::line),
        })?;
        let line = record.position().map_or(0, csv::Position::line);
        if record.iter().all(|field| field.trim().is_empty()) {
            continue;
        }
        if record.len() != COLUMNS {
            return Err(ImportError::Csv { line });
        }
        if uses.len() == IMPORT_ROWS_MAX {
            return Err(ImportError::TooManyRows {
                max_rows: IMPORT_ROWS_MAX,
            });
        }
        let fields: Vec<&str> = record.iter().collect();
        let card_use = parse_fields(&fields).map_err(|field| ImportError::Field { line, field })?;
        if !seen.insert(card_use.number.clone()) {
            return Err(ImportError::DuplicateNumber { line });
        }
        uses.push(card_use);
    }
    if uses.is_empty() {
        return Err(ImportError::Empty);
    }
    uses.sort_by(|a, b| a.number.cmp(&b.number));
    Ok(uses)
}

/// Parses one row's 11 fields (the order of [`CSV_HEADER`]). Errors: the first bad field.
pub fn parse_fields(fields: &[&str]) -> Result<CardUse, FieldError> {
    let [
        number,
        category,
        name,
        modes,
        channels,
        regions,
        operations,
        status,
        source_url,
        source_ref,
        note,
    ] = fields
    else {
        return Err(FieldError::TooMany);
    };
    let name = text_field(name, NAME_CHARS_MAX)
        .filter(|name| !name.is_empty())
        .ok_or(FieldError::Name)?;
    let status = Status::parse(status)?;
    let source_url = source_url_field(source_url).ok_or(FieldError::SourceUrl)?;
    if status == Status::Sourced && source_url.is_empty() {
        return Err(FieldError::SourceUrl);
    }
    Ok(CardUse {
        number: UseNumber::parse(number.trim())?,
        category: Category::parse(category)?,
        name,
        modes: list(modes, usize::MAX, UsageMode::parse)?,
        channels: list(channels, usize::MAX, Channel::parse)?,
        regions: list(regions, REGIONS_PER_USE_MAX, Region::parse)?,
        operations: list(operations, OPERATIONS_PER_USE_MAX, Operation::parse)?,
        status,
        source_url,
        source_ref: text_field(source_ref, NOTE_CHARS_MAX).ok_or(FieldError::Note)?,
        note: text_field(note, NOTE_CHARS_MAX).ok_or(FieldError::Note)?,
    })
}

/// Parses a `|`-separated list: sorted, repeats dropped, at most `max` values.
pub(crate) fn list<T: Ord>(
    text: &str,
    max: usize,
    parse: impl Fn(&str) -> Result<T, FieldError>,
) -> Result<Vec<T>, FieldError> {
    let mut values = text
        .split(LIST_SEPARATOR)
        .map(str::trim)
        .filter(|value| !value.is_empty())
        .map(parse)
        .collect::<Result<Vec<T>, FieldError>>()?;
    values.sort();
    values.dedup();
    if values.len() > max {
        return Err(FieldError::TooMany);
    }
    Ok(values)
}

/// Joins codes with [`LIST_SEPARATOR`].
pub(crate) fn join<T>(values: &[T], code: impl Fn(&T) -> String) -> String {
    values
        .iter()
        .map(code)
        .collect::<Vec<_>>()
        .join(&LIST_SEPARATOR.to_string())
}

/// The 11 fields of a use, in [`CSV_HEADER`] order (what the database stores, and an export row).
pub(crate) fn row_fields(card_use: &CardUse) -> [String; COLUMNS] {
    [
        card_use.number.to_string(),
        card_use.category.code().to_owned(),
        card_use.name.clone(),
        join(&card_use.modes, |m| m.code().to_owned()),
        join(&card_use.channels, |c| c.code().to_owned()),
        join(&card_use.regions, |r| r.code()),
        join(&card_use.operations, |o| o.as_str().to_owned()),
        card_use.status.code().to_owned(),
        card_use.source_url.clone(),
        card_use.source_ref.clone(),
        card_use.note.clone(),
    ]
}

/// Writes uses as a CSV file that [`parse_csv`] reads back to the same uses.
pub fn to_csv(uses: &[CardUse]) -> Result<Vec<u8>, csv::Error> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record(CSV_HEADER.split(','))?;
    for card_use in uses {
        writer.write_record(row_fields(card_use))?;
    }
    writer
        .into_inner()
        .map_err(|error| error.into_error().into())
}

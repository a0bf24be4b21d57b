//! BER-TLV data objects (ISO/IEC 7816-4 §5.2, EMV 4.4 Book 3 Annex B): parsing with limits,
//! searching, and building.
//!
//! Tags are validated by the `iso7816-tlv` crate ([`iso7816_tlv::ber::Tag`]); the walker over
//! nested objects is ours, because that crate recurses into constructed objects without a depth
//! limit, treats `00` padding as a broken tag, and reads the indefinite length `80` as zero.
//! What this parser accepts, on input:
//! - tags of 1 to [`TLV_TAG_LEN_MAX`] bytes (`5A`, `9F02`, `9F8201`);
//! - lengths in short form and long form `81`..`84` (non-minimal encodings too);
//! - `00` and `FF` padding before, between and after objects (ISO 7816-4 §5.2.2: these two
//!   values are invalid as the first tag byte and may appear "due to erased or modified data
//!   objects");
//! - nesting down to [`TLV_DEPTH_MAX`] levels, and at most [`TLV_INPUT_LEN_MAX`] bytes in all.
//!
//! On output ([`Tlv::to_bytes`]) it writes the minimal length encoding and no padding.
//! Every error carries the byte offset of the fault in the input.

use std::fmt;

/// Deepest nesting of constructed objects accepted (a top-level object is depth 1).
pub const TLV_DEPTH_MAX: usize = 16;
/// Largest TLV input accepted in one call, in bytes (one extended response APDU).
pub const TLV_INPUT_LEN_MAX: usize = 65_536;
/// Longest tag field accepted, in bytes (ISO 7816-4 §5.2.2.1: one to three bytes).
pub const TLV_TAG_LEN_MAX: usize = 3;

/// Why a byte string is not well-formed BER-TLV, with the offset of the fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TlvError {
    /// The input is longer than [`TLV_INPUT_LEN_MAX`].
    #[error("TLV input of {len_bytes} bytes exceeds the {TLV_INPUT_LEN_MAX}-byte limit")]
    InputTooLong {
        /// Bytes given.
        len_bytes: usize,
    },
    /// The input ends inside a tag field.
    #[error("tag truncated at offset {offset}")]
    TagTruncated {
        /// Offset of the first tag byte.
        offset: usize,
    },
    /// A tag field longer than [`TLV_TAG_LEN_MAX`] bytes.
    #[error("tag at offset {offset} is longer than {TLV_TAG_LEN_MAX} bytes")]
    TagTooLong {
        /// Offset of the first tag byte.
        offset: usize,
    },
    /// A tag the `iso7816-tlv` rules reject (e.g. `00`/`FF` first byte, `1F` alone).
    #[error("invalid tag at offset {offset}")]
    TagInvalid {
        /// Offset of the first tag byte (0 for tags built from values).
        offset: usize,
    },
    /// The input ends inside a length field.
    #[error("length field truncated at offset {offset}")]
    LengthTruncated {
        /// Offset of the first length byte.
        offset: usize,
    },
    /// The indefinite length `80` (not allowed in ISO 7816 BER-TLV) or a long form of 5+ bytes.
    #[error("unsupported length byte {first_byte:02X} at offset {offset}")]
    LengthUnsupported {
        /// Offset of the length field.
        offset: usize,
        /// The first length byte.
        first_byte: u8,
    },
    /// The length runs past the end of the enclosing object or input.
    #[error(
        "value of {len_bytes} bytes at offset {offset} runs past the end ({available_bytes} left)"
    )]
    ValuePastEnd {
        /// Offset of the value field.
        offset: usize,
        /// Length announced.
        len_bytes: usize,
        /// Bytes actually left.
        available_bytes: usize,
    },
    /// Constructed objects nested deeper than [`TLV_DEPTH_MAX`].
    #[error("nesting deeper than {TLV_DEPTH_MAX} levels at offset {offset}")]
    DepthExceeded {
        /// Offset of the object that went one level too deep.
        offset: usize,
    },
    /// Bytes left after the one object expected ([`Tlv::from_bytes`]).
    #[error("unexpected data after the object at offset {offset}")]
    TrailingData {
        /// Offset of the first extra object.
        offset: usize,
    },
    /// No object at all where one was expected.
    #[error("no TLV object in the input")]
    Empty,
    /// A primitive value given for a constructed tag, or children for a primitive tag.
    #[error("tag {tag} is {} but the value is not", if *constructed { "constructed" } else { "primitive" })]
    EncodingMismatch {
        /// The tag.
        tag: Tag,
        /// Whether the tag is constructed.
        constructed: bool,
    },
}

/// A BER-TLV tag of 1 to 3 bytes, held as its big-endian value (`9F02` → `0x9F02`).
///
/// Only valid encodings exist: a single byte whose low five bits are not all one, or a first
/// byte `xx1F` followed by continuation bytes (bit 8 set on all but the last). `00` and `FF`
/// are rejected as first bytes because they are padding (ISO 7816-4 §5.2.2).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(u32);

impl Tag {
    /// A tag from a value the caller knows to be valid (checked by the unit tests for every
    /// constant defined with it).
    pub(crate) const fn known(value: u32) -> Self {
        Self(value)
    }

    /// Parses a tag that must fill `bytes` exactly.
    ///
    /// Errors: [`TlvError::TagTruncated`], [`TlvError::TagTooLong`], [`TlvError::TagInvalid`],
    /// [`TlvError::TrailingData`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, TlvError> {
        let (tag, used) = read_tag(bytes, 0)?;
        if used == bytes.len() {
            Ok(tag)
        } else {
            Err(TlvError::TrailingData { offset: used })
        }
    }

    /// A tag from its big-endian value (`0x9F02`). Errors: [`TlvError::TagInvalid`] unless the
    /// value's bytes are a valid tag encoding.
    pub fn from_u32(value: u32) -> Result<Self, TlvError> {
        let bytes = value.to_be_bytes();
        let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
        if start == 0 || start == bytes.len() {
            return Err(TlvError::TagInvalid { offset: 0 });
        }
        Self::from_bytes(&bytes[start..]).map_err(|_| TlvError::TagInvalid { offset: 0 })
    }

    /// The big-endian value (`9F02` → `0x9F02`).
    pub const fn to_u32(self) -> u32 {
        self.0
    }

    /// Bytes in the tag field (1..=3).
    pub const fn len_bytes(self) -> usize {
        match self.0 {
            0..=0xFF => 1,
            0x100..=0xFFFF => 2,
            _ => 3,
        }
    }

    /// The tag field bytes.
    pub fn to_bytes(self) -> Vec<u8> {
        let all = self.0.to_be_bytes();
        all[4 - self.len_bytes()..].to_vec()
    }

    /// True if bit 6 of the first byte is set: the value is itself BER-TLV.
    pub const fn is_constructed(self) -> bool {
        let first = self.0.to_be_bytes()[4 - self.len_bytes()];
        first & 0x20 != 0
    }

    /// The same tag as the `iso7816-tlv` crate's type.
    ///
    /// Errors: [`TlvError::TagInvalid`] (not expected: our rules are stricter than the crate's).
    pub fn to_iso7816(self) -> Result<iso7816_tlv::ber::Tag, TlvError> {
        iso7816_tlv::ber::Tag::try_from(u64::from(self.0))
            .map_err(|_| TlvError::TagInvalid { offset: 0 })
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = self.len_bytes() * 2;
        write!(f, "{:0width$X}", self.0)
    }
}

impl fmt::Debug for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tag({self})")
    }
}

/// The value of a data object: raw bytes, or the nested objects of a constructed tag.
#[derive(Clone, PartialEq, Eq)]
pub enum Value {
    /// A primitive value (possibly empty).
    Primitive(Vec<u8>),
    /// The objects inside a constructed value, in card order.
    Constructed(Vec<Tlv>),
}

/// One BER-TLV data object. `Debug` shows tags and lengths, never value bytes (they may hold a
/// PAN or a name).
#[derive(Clone, PartialEq, Eq)]
pub struct Tlv {
    tag: Tag,
    value: Value,
}

impl Tlv {
    /// A primitive object. Errors: [`TlvError::EncodingMismatch`] if `tag` is constructed.
    pub fn primitive(tag: Tag, value: impl Into<Vec<u8>>) -> Result<Self, TlvError> {
        if tag.is_constructed() {
            return Err(TlvError::EncodingMismatch {
                tag,
                constructed: true,
            });
        }
        Ok(Self {
            tag,
            value: Value::Primitive(value.into()),
        })
    }

    /// A constructed object. Errors: [`TlvError::EncodingMismatch`] if `tag` is primitive.
    pub fn constructed(tag: Tag, children: Vec<Tlv>) -> Result<Self, TlvError> {
        if !tag.is_constructed() {
            return Err(TlvError::EncodingMismatch {
                tag,
                constructed: false,
            });
        }
        Ok(Self {
            tag,
            value: Value::Constructed(children),
        })
    }

    /// Parses exactly one object (padding before and after it is allowed).
    ///
    /// Errors: any [`TlvError`]; [`TlvError::Empty`] for no object, [`TlvError::TrailingData`]
    /// for more than one.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, TlvError> {
        let mut all = parse_all(bytes)?.into_iter();
        let first = all.next().ok_or(TlvError::Empty)?;
        if all.next().is_some() {
            return Err(TlvError::TrailingData {
                offset: first.encoded_len(),
            });
        }
        Ok(first)
    }

    /// The tag.
    pub fn tag(&self) -> Tag {
        self.tag
    }

    /// The value.
    pub fn value(&self) -> &Value {
        &self.value
    }

    /// The bytes of a primitive value; `None` for a constructed object.
    pub fn primitive_value(&self) -> Option<&[u8]> {
        match &self.value {
            Value::Primitive(bytes) => Some(bytes),
            Value::Constructed(_) => None,
        }
    }

    /// The nested objects of a constructed value; empty for a primitive object.
    pub fn children(&self) -> &[Tlv] {
        match &self.value {
            Value::Constructed(children) => children,
            Value::Primitive(_) => &[],
        }
    }

    /// The first object with `tag`, searching this object and then its descendants depth-first
    /// in card order.
    pub fn find(&self, tag: Tag) -> Option<&Tlv> {
        find(std::slice::from_ref(self), tag)
    }

    /// Length of the value field when encoded, in bytes.
    pub fn value_len(&self) -> usize {
        match &self.value {
            Value::Primitive(bytes) => bytes.len(),
            Value::Constructed(children) => children.iter().map(Tlv::encoded_len).sum(),
        }
    }

    /// Length of the whole object when encoded (tag, length and value), in bytes.
    pub fn encoded_len(&self) -> usize {
        let value_len = self.value_len();
        self.tag.len_bytes() + length_field_len(value_len) + value_len
    }

    /// Encodes the object (minimal length fields, no padding).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.write_to(&mut out);
        out
    }

    /// Appends the encoding to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.tag.to_bytes());
        write_length(self.value_len(), out);
        match &self.value {
            Value::Primitive(bytes) => out.extend_from_slice(bytes),
            Value::Constructed(children) => {
                for child in children {
                    child.write_to(out);
                }
            }
        }
    }
}

impl fmt::Debug for Tlv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Value::Primitive(bytes) => write!(f, "{}[{}]", self.tag, bytes.len()),
            Value::Constructed(children) => {
                write!(f, "{}", self.tag)?;
                f.debug_list().entries(children).finish()
            }
        }
    }
}

/// Encodes several objects one after the other.
pub fn encode_all(objects: &[Tlv]) -> Vec<u8> {
    let mut out = Vec::new();
    for object in objects {
        object.write_to(&mut out);
    }
    out
}

/// The first object with `tag` among `objects` and their descendants, depth-first in card order.
/// Iterative, so arbitrarily deep hand-built trees cannot overflow the stack.
pub fn find(objects: &[Tlv], tag: Tag) -> Option<&Tlv> {
    let mut stack: Vec<std::slice::Iter<'_, Tlv>> = vec![objects.iter()];
    while let Some(level) = stack.last_mut() {
        match level.next() {
            Some(object) if object.tag == tag => return Some(object),
            Some(object) => stack.push(object.children().iter()),
            None => {
                stack.pop();
            }
        }
    }
    None
}

/// The primitive value of the first object with `tag` (see [`find`]).
pub fn find_value(objects: &[Tlv], tag: Tag) -> Option<&[u8]> {
    find(objects, tag).and_then(Tlv::primitive_value)
}

/// Parses a sequence of objects, skipping `00`/`FF` padding, descending into constructed objects
/// down to [`TLV_DEPTH_MAX`] levels.
///
/// Errors: [`TlvError`] with the offset of the first fault; never panics.
pub fn parse_all(bytes: &[u8]) -> Result<Vec<Tlv>, TlvError> {
    if bytes.len() > TLV_INPUT_LEN_MAX {
        return Err(TlvError::InputTooLong {
            len_bytes: bytes.len(),
        });
    }
    parse_level(bytes, 0, 1)
}

/// One level of objects in `bytes`, which starts at `base` in the original input.
/// Recursion is bounded by [`TLV_DEPTH_MAX`].
fn parse_level(bytes: &[u8], base: usize, depth: usize) -> Result<Vec<Tlv>, TlvError> {
    let mut objects = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        if is_padding(bytes[pos]) {
            pos += 1;
            continue;
        }
        let header = read_header(&bytes[pos..], base + pos)?;
        let value_start = pos + header.header_len;
        let value = &bytes[value_start..value_start + header.value_len];
        let value = if header.tag.is_constructed() {
            if depth >= TLV_DEPTH_MAX && contains_object(value) {
                return Err(TlvError::DepthExceeded {
                    offset: base + value_start,
                });
            }
            Value::Constructed(parse_level(value, base + value_start, depth + 1)?)
        } else {
            Value::Primitive(value.to_vec())
        };
        objects.push(Tlv {
            tag: header.tag,
            value,
        });
        pos = value_start + header.value_len;
    }
    Ok(objects)
}

/// True if `bytes` holds anything but padding (so parsing it would open one more level).
fn contains_object(bytes: &[u8]) -> bool {
    bytes.iter().any(|b| !is_padding(*b))
}

const fn is_padding(byte: u8) -> bool {
    byte == 0x00 || byte == 0xFF
}

/// Tag and length of one object, checked to fit in the input.
pub(crate) struct Header {
    /// The tag.
    pub(crate) tag: Tag,
    /// Tag and length fields, in bytes.
    pub(crate) header_len: usize,
    /// Value length, in bytes; `header_len + value_len <= input.len()`.
    pub(crate) value_len: usize,
}

/// Reads the tag and length at the start of `bytes` (which sits at `offset` in the input) and
/// checks that the value fits.
pub(crate) fn read_header(bytes: &[u8], offset: usize) -> Result<Header, TlvError> {
    let (tag, tag_len) = read_tag(bytes, offset)?;
    let (value_len, len_len) = read_length(&bytes[tag_len..], offset + tag_len)?;
    let header_len = tag_len + len_len;
    let available_bytes = bytes.len() - header_len;
    if value_len > available_bytes {
        return Err(TlvError::ValuePastEnd {
            offset: offset + header_len,
            len_bytes: value_len,
            available_bytes,
        });
    }
    Ok(Header {
        tag,
        header_len,
        value_len,
    })
}

/// Reads a tag at the start of `bytes`; returns it and its length in bytes.
pub(crate) fn read_tag(bytes: &[u8], offset: usize) -> Result<(Tag, usize), TlvError> {
    let Some(&first) = bytes.first() else {
        return Err(TlvError::TagTruncated { offset });
    };
    if is_padding(first) {
        return Err(TlvError::TagInvalid { offset });
    }
    let mut len = 1;
    if first & 0x1F == 0x1F {
        loop {
            let Some(&next) = bytes.get(len) else {
                return Err(TlvError::TagTruncated { offset });
            };
            len += 1;
            if next & 0x80 == 0 {
                break;
            }
            if len == TLV_TAG_LEN_MAX {
                return Err(TlvError::TagTooLong { offset });
            }
        }
    }
    let value = bytes[..len]
        .iter()
        .fold(0_u32, |acc, b| (acc << 8) | u32::from(*b));
    // The crate's rules on top of ours (e.g. it rejects a lone 1F-style first byte).
    iso7816_tlv::ber::Tag::try_from(u64::from(value))
        .map_err(|_| TlvError::TagInvalid { offset })?;
    Ok((Tag(value), len))
}

/// Reads a length field at the start of `bytes`; returns the length and the field's size.
fn read_length(bytes: &[u8], offset: usize) -> Result<(usize, usize), TlvError> {
    let Some(&first) = bytes.first() else {
        return Err(TlvError::LengthTruncated { offset });
    };
    if first < 0x80 {
        return Ok((usize::from(first), 1));
    }
    let n = usize::from(first & 0x7F);
    if n == 0 || n > 4 {
        return Err(TlvError::LengthUnsupported {
            offset,
            first_byte: first,
        });
    }
    let Some(field) = bytes.get(1..=n) else {
        return Err(TlvError::LengthTruncated { offset });
    };
    let value = field
        .iter()
        .fold(0_u64, |acc, b| (acc << 8) | u64::from(*b));
    // A length that does not fit usize certainly runs past the end of any input we accept.
    let value = usize::try_from(value).unwrap_or(usize::MAX);
    Ok((value, 1 + n))
}

/// Bytes in the minimal length field for `len`.
pub fn length_field_len(len: usize) -> usize {
    match len {
        0..=0x7F => 1,
        0x80..=0xFF => 2,
        0x100..=0xFFFF => 3,
        0x1_0000..=0xFF_FFFF => 4,
        _ => 5,
    }
}

/// Appends the minimal BER length field for `len` (`81`/`82`/`83`/`84` long forms).
pub fn write_length(len: usize, out: &mut Vec<u8>) {
    let field_len = length_field_len(len);
    if field_len == 1 {
        out.push(u8::try_from(len).unwrap_or(0));
        return;
    }
    let n = field_len - 1;
    let bytes = u64::try_from(len).unwrap_or(u64::MAX).to_be_bytes();
    out.push(0x80 | u8::try_from(n).unwrap_or(4));
    out.extend_from_slice(&bytes[8 - n..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s.replace(' ', "")).unwrap()
    }

    #[test]
    fn multi_byte_tags_and_long_lengths_parse() {
        // 9F8201 (3-byte tag) with an 81-form length; 5F2D with an 82-form (non-minimal) length.
        let mut bytes = h("9F8201 81 80");
        bytes.extend([0xAA; 0x80]);
        bytes.extend(h("5F2D 820002 7A68"));
        let objects = parse_all(&bytes).unwrap();
        assert_eq!(objects.len(), 2);
        assert_eq!(objects[0].tag().to_u32(), 0x9F_8201);
        assert_eq!(objects[0].primitive_value().unwrap().len(), 0x80);
        assert_eq!(objects[1].tag().to_string(), "5F2D");
        assert_eq!(objects[1].primitive_value().unwrap(), b"zh");
        // Re-encoding uses the minimal 1-byte length for "zh".
        assert_eq!(objects[1].to_bytes(), h("5F2D 02 7A68"));
    }

    #[test]
    fn lengths_83_and_84_are_accepted_on_input() {
        let objects = parse_all(&h("5A 83000002 1234  5F24 8400000003 251231")).unwrap();
        assert_eq!(find_value(&objects, Tag::known(0x5A)).unwrap(), h("1234"));
        assert_eq!(
            find_value(&objects, Tag::known(0x5F24)).unwrap(),
            h("251231")
        );
    }

    #[test]
    fn padding_is_skipped_between_and_inside_objects() {
        let objects = parse_all(&h("00 00 70 07 00 5A 02 1234 FF FF 00 9F36 02 0001 FF")).unwrap();
        assert_eq!(objects.len(), 2);
        assert_eq!(objects[0].children().len(), 1);
        assert_eq!(find_value(&objects, Tag::known(0x9F36)).unwrap(), h("0001"));
    }

    #[test]
    fn errors_carry_offsets() {
        assert_eq!(
            parse_all(&h("5A 05 1234")),
            Err(TlvError::ValuePastEnd {
                offset: 2,
                len_bytes: 5,
                available_bytes: 2
            })
        );
        assert_eq!(
            parse_all(&h("9F")),
            Err(TlvError::TagTruncated { offset: 0 })
        );
        assert_eq!(
            parse_all(&h("5A00 9F818101 00")),
            Err(TlvError::TagTooLong { offset: 2 })
        );
        assert_eq!(
            parse_all(&h("5A 80")),
            Err(TlvError::LengthUnsupported {
                offset: 1,
                first_byte: 0x80
            })
        );
        assert_eq!(
            parse_all(&h("5A 82 01")),
            Err(TlvError::LengthTruncated { offset: 1 })
        );
        // The inner error is reported at its offset in the whole input.
        assert_eq!(
            parse_all(&h("70 04 5A 05 1234")),
            Err(TlvError::ValuePastEnd {
                offset: 4,
                len_bytes: 5,
                available_bytes: 2
            })
        );
    }

    #[test]
    fn depth_limit_is_exact() {
        fn nest(levels: usize) -> Vec<u8> {
            let mut bytes = h("5A 01 01");
            for _ in 0..levels {
                let mut outer = vec![0x70, u8::try_from(bytes.len()).unwrap()];
                outer.extend(bytes);
                bytes = outer;
            }
            bytes
        }
        // 15 constructed levels + the primitive = depth 16: accepted.
        assert!(parse_all(&nest(TLV_DEPTH_MAX - 1)).is_ok());
        assert!(matches!(
            parse_all(&nest(TLV_DEPTH_MAX)),
            Err(TlvError::DepthExceeded { .. })
        ));
    }

    #[test]
    fn tags_validate_like_the_spec() {
        assert!(Tag::from_bytes(&h("00")).is_err());
        assert!(Tag::from_bytes(&h("FF01")).is_err());
        assert!(Tag::from_bytes(&h("1F")).is_err());
        assert!(Tag::from_bytes(&h("9F02")).is_ok());
        assert!(Tag::from_bytes(&h("5A01")).is_err());
        assert_eq!(Tag::from_u32(0x9F02).unwrap(), Tag::known(0x9F02));
        assert!(Tag::from_u32(0x5A01).is_err());
        assert!(Tag::known(0x70).is_constructed());
        assert!(Tag::known(0xBF0C).is_constructed());
        assert!(!Tag::known(0x9F02).is_constructed());
        assert_eq!(
            Tag::known(0x9F8201).to_iso7816().unwrap().to_bytes(),
            &h("9F8201")[..]
        );
    }

    #[test]
    fn builder_checks_encoding_and_writes_minimal_lengths() {
        assert!(Tlv::primitive(Tag::known(0x70), vec![]).is_err());
        assert!(Tlv::constructed(Tag::known(0x5A), vec![]).is_err());
        let pan = Tlv::primitive(Tag::known(0x5A), h("6221234567890123")).unwrap();
        let record = Tlv::constructed(Tag::known(0x70), vec![pan]).unwrap();
        assert_eq!(record.to_bytes(), h("700A 5A08 6221234567890123"));
        let mut out = Vec::new();
        write_length(0x100, &mut out);
        write_length(0x7F, &mut out);
        write_length(0x80, &mut out);
        assert_eq!(out, h("820100 7F 8180"));
    }

    #[test]
    fn debug_hides_values() {
        let name = Tlv::primitive(Tag::known(0x5F20), b"ZHANG SAN".to_vec()).unwrap();
        let shown = format!("{name:?}");
        assert_eq!(shown, "5F20[9]");
    }
}

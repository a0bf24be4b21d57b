//! The national platform's interface at the edge (国家医疗保障信息平台 定点医药机构接口,
//! ../shared/reference/medical-settlement.md §1): the request/response envelope, each
//! implemented infno's `input` and `output` with the interface's field names, money as exact
//! literals, and the public error catalogue. Wire types stop here: `medical` works on domain
//! types (`Fen`, `Admdvs`, `ClassifiedLine`, `Split`).

pub mod envelope;
pub mod error;
pub mod input;
pub mod money;
pub mod output;

pub use envelope::{
    ENVELOPE_BYTES_MAX, Envelope, MSGID_LEN_MAX, RequestEnvelope, ResponseEnvelope,
};
pub use error::ApiError;
pub use money::{WireNumber, Yuan};

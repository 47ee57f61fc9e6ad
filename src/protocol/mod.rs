//! MQTT wire codec: bytes ⇄ [`Packet`]. Pure: knows nothing of sessions, threads or sockets.
//!
//! One packet model serves every protocol level. MQTT 3.1 (level 3) and 3.1.1 (level 4) differ only in
//! the CONNECT protocol name; MQTT 5.0 (level 5) will add properties and reason codes as extra fields on
//! these same structs, decoded and encoded according to [`ProtocolLevel`], so the broker above the codec
//! does not fork per version.
//!
//! Decoding is two steps: [`frame`] reads the fixed header and checks the remaining length against the
//! configured maximum *before* any payload is buffered; [`decode`] turns one complete frame into a packet.

mod decode;
mod encode;
mod error;
mod types;

pub use decode::{check_first_byte, decode, decode_reusing, frame, Frame};
pub use encode::{encode, encode_publish, encoded_len};
pub use error::DecodeError;
pub use types::*;

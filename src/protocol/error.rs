//! Decoding errors. Every variant is a reason to close the connection; the one exception the broker
//! answers first is [`DecodeError::UnsupportedProtocolLevel`], which gets CONNACK 0x01 [MQTT-3.1.2-2].

use std::fmt;

/// Why a byte sequence is not a valid MQTT 3.1/3.1.1 packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// The remaining length still had the continuation bit set on its 4th byte [MQTT-2.2.3].
    MalformedRemainingLength,
    /// Fixed header plus remaining length exceed the configured maximum packet size.
    PacketTooLarge { size: usize, max: usize },
    /// Packet type 0 or 15, both reserved [MQTT-2.2.1].
    ReservedPacketType(u8),
    /// Fixed-header flags differ from the value the packet type requires [MQTT-2.2.2-1], [MQTT-2.2.2-2].
    InvalidFlags { packet_type: u8, flags: u8 },
    /// PUBLISH with both QoS bits set [MQTT-3.3.1-4].
    PublishQoS3,
    /// PUBLISH with the DUP flag set and QoS 0 [MQTT-3.3.1-2].
    DupWithQoS0,
    /// A field runs past the end of the remaining length.
    Truncated,
    /// Bytes left over after the last field of the packet.
    TrailingBytes,
    /// A string is not well-formed UTF-8 [MQTT-1.5.3-1].
    InvalidUtf8,
    /// A string contains U+0000 [MQTT-1.5.3-2].
    NullCharacter,
    /// CONNECT protocol name is neither "MQTT" nor "MQIsdp" [MQTT-3.1.2-1]: close without CONNACK.
    InvalidProtocolName,
    /// CONNECT protocol name is valid but the level (carried here) is not supported with it
    /// [MQTT-3.1.2-2]: answer CONNACK 0x01, then close.
    UnsupportedProtocolLevel(u8),
    /// CONNECT flags bit 0 (reserved) is set [MQTT-3.1.2-3].
    ConnectReservedFlag,
    /// CONNECT will flag is 0 but will QoS or will retain is not [MQTT-3.1.2-11], [MQTT-3.1.2-13], [MQTT-3.1.2-15].
    WillFieldsWithoutWillFlag,
    /// CONNECT will QoS is 3 [MQTT-3.1.2-14].
    WillQoS3,
    /// CONNECT password flag set without the user name flag [MQTT-3.1.2-22].
    PasswordWithoutUsername,
    /// A topic name (PUBLISH topic or CONNECT will topic) is empty [MQTT-4.7.3-1].
    EmptyTopicName,
    /// A topic name (PUBLISH topic or CONNECT will topic) contains '+' or '#' [MQTT-3.3.2-2], [MQTT-4.7.1-1].
    WildcardInTopicName,
    /// A packet identifier is 0 [MQTT-2.3.1-1].
    ZeroPacketId,
    /// SUBSCRIBE without any topic filter [MQTT-3.8.3-3].
    NoSubscribeFilters,
    /// SUBSCRIBE requested-QoS byte (carried here) has reserved bits set or QoS 3 [MQTT-3.8.3-4].
    InvalidRequestedQoS(u8),
    /// UNSUBSCRIBE without any topic filter [MQTT-3.10.3-2].
    NoUnsubscribeFilters,
    /// CONNACK acknowledge-flags byte (carried here) has any of its upper 7 bits set [MQTT-3.2.2.1].
    ConnAckReservedFlags(u8),
    /// CONNACK return code (carried here) is not 0..=5 [MQTT-3.2.2.3].
    InvalidConnectReturnCode(u8),
    /// SUBACK return code (carried here) is not 0x00, 0x01, 0x02 or 0x80 [MQTT-3.9.3-2].
    InvalidSubAckCode(u8),
}

impl DecodeError {
    /// True when the broker must answer CONNACK 0x01 (unacceptable protocol version) before closing
    /// [MQTT-3.1.2-2]; for every other error it closes without answering.
    pub fn is_unsupported_protocol_level(&self) -> bool {
        matches!(self, DecodeError::UnsupportedProtocolLevel(_))
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use DecodeError::*;
        match self {
            MalformedRemainingLength => {
                f.write_str("remaining length longer than 4 bytes [MQTT-2.2.3]")
            }
            PacketTooLarge { size, max } => {
                write!(
                    f,
                    "packet of {size} bytes exceeds the maximum of {max} bytes"
                )
            }
            ReservedPacketType(t) => write!(f, "reserved packet type {t} [MQTT-2.2.1]"),
            InvalidFlags { packet_type, flags } => write!(
                f,
                "invalid fixed-header flags {flags:#06b} for packet type {packet_type} \
                 [MQTT-2.2.2-1] [MQTT-2.2.2-2] [MQTT-3.6.1-1] [MQTT-3.8.1-1] [MQTT-3.10.1-1]"
            ),
            PublishQoS3 => f.write_str("PUBLISH with QoS 3 [MQTT-3.3.1-4]"),
            DupWithQoS0 => f.write_str("PUBLISH with DUP set and QoS 0 [MQTT-3.3.1-2]"),
            Truncated => f.write_str("field runs past the end of the packet [MQTT-2.2.3]"),
            TrailingBytes => f.write_str("unexpected bytes after the last field of the packet"),
            InvalidUtf8 => f.write_str("string is not well-formed UTF-8 [MQTT-1.5.3-1]"),
            NullCharacter => f.write_str("string contains U+0000 [MQTT-1.5.3-2]"),
            InvalidProtocolName => {
                f.write_str("CONNECT protocol name is not \"MQTT\" or \"MQIsdp\" [MQTT-3.1.2-1]")
            }
            UnsupportedProtocolLevel(l) => {
                write!(f, "CONNECT protocol level {l} not supported [MQTT-3.1.2-2]")
            }
            ConnectReservedFlag => f.write_str("CONNECT reserved flag bit 0 is set [MQTT-3.1.2-3]"),
            WillFieldsWithoutWillFlag => f.write_str(
                "CONNECT will QoS or will retain set without the will flag \
                 [MQTT-3.1.2-11] [MQTT-3.1.2-13] [MQTT-3.1.2-15]",
            ),
            WillQoS3 => f.write_str("CONNECT will QoS 3 [MQTT-3.1.2-14]"),
            PasswordWithoutUsername => {
                f.write_str("CONNECT password flag set without user name flag [MQTT-3.1.2-22]")
            }
            EmptyTopicName => f.write_str("empty topic name [MQTT-4.7.3-1]"),
            WildcardInTopicName => {
                f.write_str("wildcard '+' or '#' in topic name [MQTT-3.3.2-2] [MQTT-4.7.1-1]")
            }
            ZeroPacketId => f.write_str("packet identifier 0 [MQTT-2.3.1-1]"),
            NoSubscribeFilters => f.write_str("SUBSCRIBE without topic filters [MQTT-3.8.3-3]"),
            InvalidRequestedQoS(b) => {
                write!(
                    f,
                    "SUBSCRIBE requested QoS byte {b:#04x} invalid [MQTT-3.8.3-4]"
                )
            }
            NoUnsubscribeFilters => {
                f.write_str("UNSUBSCRIBE without topic filters [MQTT-3.10.3-2]")
            }
            ConnAckReservedFlags(b) => {
                write!(
                    f,
                    "CONNACK acknowledge flags {b:#04x} have reserved bits set [MQTT-3.2.2.1]"
                )
            }
            InvalidConnectReturnCode(c) => {
                write!(f, "CONNACK return code {c} is not 0..=5 [MQTT-3.2.2.3]")
            }
            InvalidSubAckCode(c) => {
                write!(
                    f,
                    "SUBACK return code {c:#04x} is not 0, 1, 2 or 0x80 [MQTT-3.9.3-2]"
                )
            }
        }
    }
}

impl std::error::Error for DecodeError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_cites_clause() {
        assert_eq!(
            DecodeError::PublishQoS3.to_string(),
            "PUBLISH with QoS 3 [MQTT-3.3.1-4]"
        );
        assert!(DecodeError::UnsupportedProtocolLevel(5)
            .to_string()
            .contains("level 5"));
        assert_eq!(
            DecodeError::PacketTooLarge { size: 10, max: 5 }.to_string(),
            "packet of 10 bytes exceeds the maximum of 5 bytes"
        );
    }

    #[test]
    fn only_unsupported_level_gets_connack() {
        assert!(DecodeError::UnsupportedProtocolLevel(5).is_unsupported_protocol_level());
        assert!(!DecodeError::InvalidProtocolName.is_unsupported_protocol_level());
        assert!(!DecodeError::Truncated.is_unsupported_protocol_level());
    }

    #[test]
    fn is_std_error() {
        fn takes(_: &dyn std::error::Error) {}
        takes(&DecodeError::Truncated);
    }
}

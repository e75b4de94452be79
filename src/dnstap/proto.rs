//! The dnstap messages (dnstap.proto, proto2), as `prost` structs written out by hand
//! (no protoc at build time). Only the fields fanzha fills are here; field numbers
//! and enum values are the schema's.

/// The outer message: one per frame.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Dnstap {
    /// Which server wrote it (`[dnstap] identity`).
    #[prost(bytes = "vec", optional, tag = "1")]
    pub identity: Option<Vec<u8>>,
    /// The software and its version.
    #[prost(bytes = "vec", optional, tag = "2")]
    pub version: Option<Vec<u8>>,
    /// Always [`DnstapType::Message`].
    #[prost(enumeration = "DnstapType", required, tag = "15")]
    pub r#type: i32,
    /// The DNS message.
    #[prost(message, optional, tag = "14")]
    pub message: Option<Message>,
}

/// `Dnstap.Type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum DnstapType {
    /// A DNS message.
    Message = 1,
}

/// `SocketFamily`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum SocketFamily {
    /// IPv4.
    Inet = 1,
    /// IPv6.
    Inet6 = 2,
}

/// `SocketProtocol`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum SocketProtocol {
    /// DNS over UDP.
    Udp = 1,
    /// DNS over TCP.
    Tcp = 2,
    /// DNS over TLS.
    Dot = 3,
    /// DNS over HTTPS.
    Doh = 4,
}

/// `Message.Type` (the two fanzha writes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum MessageType {
    /// A query from a client, as received.
    ClientQuery = 5,
    /// The answer sent back to it.
    ClientResponse = 6,
}

/// `Policy.Action` (the two a block takes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum PolicyAction {
    /// Answered NXDOMAIN.
    Nxdomain = 1,
    /// Answered with local data (the sinkhole address).
    LocalData = 6,
}

/// `Policy.Match`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum PolicyMatch {
    /// The query name matched the rule.
    Qname = 1,
}

/// `Policy`: why fanzha answered a query itself (a block).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Policy {
    /// "fanzha" and the category, e.g. "fanzha/loan".
    #[prost(string, optional, tag = "1")]
    pub r#type: Option<String>,
    /// The rule's name.
    #[prost(bytes = "vec", optional, tag = "2")]
    pub rule: Option<Vec<u8>>,
    /// The answer given.
    #[prost(enumeration = "PolicyAction", optional, tag = "3")]
    pub action: Option<i32>,
    /// What matched.
    #[prost(enumeration = "PolicyMatch", optional, tag = "4")]
    pub r#match: Option<i32>,
    /// The matched value (the query name, wire form).
    #[prost(bytes = "vec", optional, tag = "5")]
    pub value: Option<Vec<u8>>,
}

/// `Message`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Message {
    /// CLIENT_QUERY or CLIENT_RESPONSE.
    #[prost(enumeration = "MessageType", required, tag = "1")]
    pub r#type: i32,
    /// IPv4 or IPv6.
    #[prost(enumeration = "SocketFamily", optional, tag = "2")]
    pub socket_family: Option<i32>,
    /// UDP or TCP.
    #[prost(enumeration = "SocketProtocol", optional, tag = "3")]
    pub socket_protocol: Option<i32>,
    /// The client's address (4 or 16 bytes), as `client_ip` makes it.
    #[prost(bytes = "vec", optional, tag = "4")]
    pub query_address: Option<Vec<u8>>,
    /// fanzha's address the query came to.
    #[prost(bytes = "vec", optional, tag = "5")]
    pub response_address: Option<Vec<u8>>,
    /// The client's port.
    #[prost(uint32, optional, tag = "6")]
    pub query_port: Option<u32>,
    /// fanzha's port.
    #[prost(uint32, optional, tag = "7")]
    pub response_port: Option<u32>,
    /// When the query came, seconds since the epoch.
    #[prost(uint64, optional, tag = "8")]
    pub query_time_sec: Option<u64>,
    /// … and nanoseconds.
    #[prost(fixed32, optional, tag = "9")]
    pub query_time_nsec: Option<u32>,
    /// The query as received.
    #[prost(bytes = "vec", optional, tag = "10")]
    pub query_message: Option<Vec<u8>>,
    /// When the answer went, seconds since the epoch.
    #[prost(uint64, optional, tag = "12")]
    pub response_time_sec: Option<u64>,
    /// … and nanoseconds.
    #[prost(fixed32, optional, tag = "13")]
    pub response_time_nsec: Option<u32>,
    /// The answer as sent.
    #[prost(bytes = "vec", optional, tag = "14")]
    pub response_message: Option<Vec<u8>>,
    /// Why fanzha answered itself (blocked queries).
    #[prost(message, optional, tag = "15")]
    pub policy: Option<Policy>,
}

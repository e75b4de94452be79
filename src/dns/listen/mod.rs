//! The listeners: they move bytes between sockets and the engine, and nothing else.
//! Sockets are made by `bind` before the lists load; `udp` serves datagrams in
//! recvmmsg batches (`batch`), `tcp` one task per connection (TCP, TLS, and HTTPS,
//! which hands the TLS stream to `https`, whose requests `doh` reads), and `proxy`
//! reads the PROXY v2 header of a balancer in front. Each hands a query to the engine once
//! ([`crate::dns::engine::Engine::receive`]) and sends what it gets back.

pub mod batch;
pub mod bind;
pub mod doh;
pub mod https;
pub mod proxy;
pub mod tcp;
pub mod udp;

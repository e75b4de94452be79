//! The iterator as a hickory `DnsHandle`, so that hickory's DNSSEC validator
//! (`DnssecDnsHandle`) can sit on top of it: every query the validator sends (the
//! client's, and the DS and DNSKEY records it needs) is resolved by the iterator, which
//! then asks with DO set and keeps signatures and denial proofs.

use std::pin::Pin;
use std::sync::Arc;

use futures_util::stream::{self, Stream};
use hickory_proto::op::{DnsRequest, DnsResponse, Message, MessageType, OpCode, ResponseCode};
use hickory_resolver::net::NetError;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::xfer::DnsHandle;

use super::{Recursor, Step};

/// A cloneable handle on an iterator.
#[derive(Clone)]
pub struct IterHandle(pub Arc<Recursor>);

impl DnsHandle for IterHandle {
    type Response = Pin<Box<dyn Stream<Item = Result<DnsResponse, NetError>> + Send>>;
    type Runtime = TokioRuntimeProvider;

    fn send(&self, request: DnsRequest) -> Self::Response {
        let it = self.0.clone();
        Box::pin(stream::once(async move {
            let (req, _) = request.into_parts();
            let q = req
                .queries
                .first()
                .cloned()
                .ok_or(NetError::from("a request without a question"))?;
            let step = it.resolve(q.name().clone(), q.query_type()).await;
            let mut m = Message::new(req.metadata.id, MessageType::Response, OpCode::Query);
            m.add_query(q);
            match step {
                Step::Answer(answers, proofs) => {
                    m.answers = answers;
                    m.authorities = proofs;
                }
                Step::NxDomain(chain, auth) => {
                    m.metadata.response_code = ResponseCode::NXDomain;
                    m.answers = chain;
                    m.authorities = auth;
                }
                Step::NoData(chain, auth) => {
                    m.answers = chain;
                    m.authorities = auth;
                }
                Step::Alias(..) => return Err(NetError::from("an alias left unresolved")),
                Step::Fail(why) => return Err(NetError::from(why)),
            }
            DnsResponse::from_message(m).map_err(|e| NetError::from(e.to_string()))
        }))
    }
}

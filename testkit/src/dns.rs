//! An authoritative DNS server on 127.0.0.1 (UDP) for DNS monitors: it answers the records it
//! was given, NXDOMAIN for names it does not know, an empty answer for a known name's other
//! types, and SERVFAIL for `servfail.test`; records can be changed while it runs.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
};

/// Record data, for the records a server is given.
pub use hickory_proto::rr::{rdata, RData};
use hickory_proto::{
    op::{Message, MessageType, OpCode, ResponseCode},
    rr::{Name, Record},
    serialize::binary::{BinDecodable, BinEncodable},
};

/// A running DNS server; it stops when dropped.
pub struct DnsServer {
    pub addr: SocketAddr,
    records: Arc<Mutex<Vec<(String, RData)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn key(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

impl DnsServer {
    /// Serves `records`: (name, data) pairs; a name may have several.
    pub async fn start(records: Vec<(&str, RData)>) -> Self {
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0")
            .await
            .expect("bind the DNS server");
        let addr = socket.local_addr().expect("address");
        let records = Arc::new(Mutex::new(
            records
                .into_iter()
                .map(|(name, data)| (key(name), data))
                .collect::<Vec<_>>(),
        ));
        let served = records.clone();
        let task = tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            while let Ok((len, from)) = socket.recv_from(&mut buf).await {
                let Ok(query) = Message::from_bytes(&buf[..len]) else {
                    continue;
                };
                let answer = respond(&query, &served.lock().unwrap());
                if let Ok(bytes) = answer.to_bytes() {
                    let _ = socket.send_to(&bytes, from).await;
                }
            }
        });
        Self {
            addr,
            records,
            task,
        }
    }

    /// Replaces a name's records.
    pub fn set(&self, name: &str, data: Vec<RData>) {
        let mut records = self.records.lock().unwrap();
        let name = key(name);
        records.retain(|(n, _)| *n != name);
        records.extend(data.into_iter().map(|d| (name.clone(), d)));
    }
}

fn respond(query: &Message, records: &[(String, RData)]) -> Message {
    let mut answer = Message::new();
    answer
        .set_id(query.id())
        .set_message_type(MessageType::Response)
        .set_op_code(OpCode::Query)
        .set_authoritative(true)
        .set_recursion_desired(query.recursion_desired())
        .set_recursion_available(true);
    answer.add_queries(query.queries().to_vec());
    for q in query.queries() {
        let name = key(&q.name().to_ascii());
        if name == "servfail.test" {
            answer.set_response_code(ResponseCode::ServFail);
            continue;
        }
        let known: Vec<&RData> = records
            .iter()
            .filter(|(n, _)| *n == name)
            .map(|(_, d)| d)
            .collect();
        if known.is_empty() {
            answer.set_response_code(ResponseCode::NXDomain);
            continue;
        }
        for data in known
            .into_iter()
            .filter(|d| d.record_type() == q.query_type())
        {
            let owner = Name::from_ascii(q.name().to_ascii()).unwrap_or_else(|_| q.name().clone());
            answer.add_answer(Record::from_rdata(owner, 60, data.clone()));
        }
    }
    answer
}

//! Each direction's checks and relaying. Everything here is synchronous:
//! it runs between a readiness wake-up and the next `.await`, with the
//! thread's scratch buffer, so no datagram is ever held across an await,
//! except one whose destination name must first be resolved (see
//! [`Pending`]).

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use socket2::{Domain, Protocol, SockAddr, SockRef, Socket, Type};
use tokio::net::UdpSocket;
use tokio::time::Instant;

use super::book::NameVerdict;
use super::recv::{recv_batch, SLOTS};
use super::scratch::{self, SLOT_LEN};
use super::Association;
use crate::access::Denial;
use crate::proto::{TargetAddr, UdpHeader, UdpReplyHeader, MAX_UDP_IP_HEADER};
use crate::stats::UdpDrop;

/// Datagrams handled per wake-up before the association yields, so one busy
/// association cannot starve the other tasks on its worker.
pub(super) const BUDGET: usize = 64;

/// A datagram to a name not resolved yet: its payload is copied out of
/// the scratch buffer while the association awaits the resolver, with the
/// datagram received with it, if any (the only payloads an association
/// ever holds, freed once the lookup ends, which is bounded by a timeout).
pub(super) struct Pending {
    pub(super) name: String,
    pub(super) port: u16,
    pub(super) payload: Box<[u8]>,
    /// The next datagram of the same receive call, handled after the lookup.
    pub(super) then: Option<(Box<[u8]>, SocketAddr)>,
}

/// How a batch of datagrams ended.
pub(super) enum Batch {
    /// The socket has nothing more for now.
    Drained,
    /// [`BUDGET`] datagrams handled; there may be more.
    Budget,
    /// A datagram waits for a name to resolve.
    Resolve(Box<Pending>),
}

/// Canonical form: an IPv4-mapped IPv6 address is the IPv4 host it names,
/// so it is checked, sent to and remembered as that host.
fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

/// Sends without asking tokio for write readiness: a datagram the kernel
/// cannot take right now is dropped, as the network would, so there is
/// nothing to wait for (and a fresh socket needs no reactor turn first).
fn send_now(socket: &UdpSocket, datagram: &[u8], to: SocketAddr) -> io::Result<usize> {
    SockRef::from(socket).send_to(datagram, &SockAddr::from(to))
}

/// A socket for remote hosts of one family, bound to the unspecified
/// address so the kernel picks the route and source address. IPv6 only
/// for the IPv6 one, so IPv4 hosts never reach it in mapped form.
fn open_remote(v6: bool) -> io::Result<UdpSocket> {
    let (domain, any) = if v6 {
        (Domain::IPV6, SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)))
    } else {
        (Domain::IPV4, SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)))
    };
    let socket = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
    if v6 {
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&any.into())?;
    UdpSocket::from_std(socket.into())
}

impl Association<'_> {
    /// Reads and relays the client's datagrams until the relay socket is
    /// drained, the budget is spent, or one needs a name resolved.
    pub(super) fn relay_client_batch(&mut self) -> Batch {
        for _ in 0..BUDGET / SLOTS {
            let step = scratch::with(|buf| {
                let (a, b) = buf.split_at_mut(SLOT_LEN);
                let got = match recv_batch(&self.relay, [&mut *a, &mut *b]) {
                    Ok(Some(got)) => got,
                    Ok(None) => return Some(Batch::Drained),
                    // An error queued on the socket (an ICMP report): nothing
                    // to relay, try again.
                    Err(_) => return None,
                };
                let slots = [&*a, &*b];
                for i in 0..got.count {
                    let (len, source) = got.datagrams[i];
                    if let Some(mut pending) = self.client_datagram(&slots[i][..len], source) {
                        if let Some(&(len, source)) = got.datagrams[..got.count].get(i + 1) {
                            pending.then = Some((slots[i + 1][..len].into(), source));
                        }
                        return Some(Batch::Resolve(pending));
                    }
                }
                (got.count < SLOTS).then_some(Batch::Drained)
            });
            if let Some(step) = step {
                return step;
            }
        }
        Batch::Budget
    }

    /// Checks one datagram from the relay socket and sends its payload on.
    pub(super) fn client_datagram(
        &mut self,
        datagram: &[u8],
        source: SocketAddr,
    ) -> Option<Box<Pending>> {
        if !self.client.admit(source) {
            self.drop_datagram(UdpDrop::ForeignSource);
            return None;
        }
        let (header, data_at) = match UdpHeader::parse(datagram) {
            Ok(parsed) => parsed,
            Err(err) => {
                tracing::trace!(reason = err.reason(), "malformed UDP header");
                self.drop_datagram(UdpDrop::Malformed);
                return None;
            }
        };
        if header.frag != 0 {
            self.drop_datagram(UdpDrop::Fragmented);
            return None;
        }
        let payload = &datagram[data_at..];
        match header.target {
            TargetAddr::Ip(addr) => {
                let addr = canonical(addr);
                if !self.book.destinations.contains(&addr) {
                    let check = self.cx.rules.check_addr(&self.cx.who, None, addr);
                    if let Err(denial) = check {
                        self.deny(&TargetAddr::Ip(addr), &denial);
                        return None;
                    }
                }
                self.send_to_remote(addr, payload);
                None
            }
            TargetAddr::Domain(name, port) => {
                let now = Instant::now();
                match self.book.names.get(&name, port, now).cloned() {
                    Some(verdict) => {
                        self.apply(&name, port, verdict, payload);
                        None
                    }
                    None => Some(Box::new(Pending {
                        name,
                        port,
                        payload: payload.into(),
                        then: None,
                    })),
                }
            }
        }
    }

    /// Acts on a name's verdict for one payload.
    pub(super) fn apply(&mut self, name: &str, port: u16, verdict: NameVerdict, payload: &[u8]) {
        match verdict {
            NameVerdict::Send(addr) => self.send_to_remote(addr, payload),
            NameVerdict::Denied(denial) => {
                self.deny(&TargetAddr::Domain(name.to_owned(), port), &denial);
            }
            NameVerdict::Unresolved => self.drop_datagram(UdpDrop::Unresolved),
        }
    }

    /// A refused datagram: dropped and counted under its rule; reported
    /// (log line, telemetry) the first time only.
    fn deny(&mut self, destination: &TargetAddr, denial: &Denial) {
        self.drop_datagram(UdpDrop::Denied);
        if self
            .book
            .noted_denials
            .insert_while_room(destination.clone())
        {
            (self.cx.on_denial)(destination, denial);
        } else {
            self.cx.stats.access_denied(&denial.rule);
        }
    }

    /// Sends an allowed payload to `addr` (canonical) on the remote socket
    /// of its family, and remembers `addr` as a host the client talks to.
    fn send_to_remote(&mut self, addr: SocketAddr, payload: &[u8]) {
        let slot = match addr.ip() {
            IpAddr::V4(_) => &mut self.remote.v4,
            IpAddr::V6(_) => &mut self.remote.v6,
        };
        if slot.is_none() {
            match open_remote(addr.is_ipv6()) {
                Ok(socket) => *slot = Some(socket),
                Err(err) => {
                    tracing::debug!(%err, "cannot open a remote UDP socket");
                    self.drop_datagram(UdpDrop::SendFailed);
                    return;
                }
            }
        }
        let Some(socket) = slot.as_ref() else {
            return;
        };
        match send_now(socket, payload, addr) {
            Ok(_) => {
                self.book.destinations.insert(addr);
                self.tally.datagrams_up += 1;
                self.tally.bytes_up += payload.len() as u64;
                self.cx.stats.udp.client_to_remote(payload.len());
                self.last_activity = Instant::now();
            }
            Err(err) => {
                tracing::trace!(%err, %addr, "send to remote failed");
                self.drop_datagram(UdpDrop::SendFailed);
            }
        }
    }

    /// Reads and relays replies from one remote socket until it is drained
    /// or the budget is spent.
    pub(super) fn relay_remote_batch(&mut self, v6: bool) -> Batch {
        for _ in 0..BUDGET / SLOTS {
            let drained = scratch::with(|buf| {
                let socket = if v6 { &self.remote.v6 } else { &self.remote.v4 };
                let Some(socket) = socket else {
                    return true;
                };
                // Each payload lands after room for the SOCKS header, which
                // is then written right in front of it: one send, no copy.
                let (a, b) = buf.split_at_mut(SLOT_LEN);
                let bufs = [&mut a[MAX_UDP_IP_HEADER..], &mut b[MAX_UDP_IP_HEADER..]];
                let got = match recv_batch(socket, bufs) {
                    Ok(Some(got)) => got,
                    Ok(None) => return true,
                    Err(_) => return false,
                };
                for (slot, &(len, source)) in [a, b].into_iter().zip(&got.datagrams[..got.count]) {
                    self.remote_datagram(slot, len, source);
                }
                got.count < SLOTS
            });
            if drained {
                return Batch::Drained;
            }
        }
        Batch::Budget
    }

    /// `buf[MAX_UDP_IP_HEADER..][..len]` came from `source`.
    fn remote_datagram(&mut self, buf: &mut [u8], len: usize, source: SocketAddr) {
        let source = canonical(source);
        let reply_to = match self.client.reply_to {
            Some(client) if self.book.destinations.contains(&source) => client,
            _ => {
                self.drop_datagram(UdpDrop::Unsolicited);
                return;
            }
        };
        let header = UdpReplyHeader::new(source);
        let header = header.as_bytes();
        let start = MAX_UDP_IP_HEADER - header.len();
        buf[start..MAX_UDP_IP_HEADER].copy_from_slice(header);
        match send_now(&self.relay, &buf[start..MAX_UDP_IP_HEADER + len], reply_to) {
            Ok(_) => {
                self.tally.datagrams_down += 1;
                self.tally.bytes_down += len as u64;
                self.cx.stats.udp.remote_to_client(len);
                self.last_activity = Instant::now();
            }
            Err(err) => {
                tracing::trace!(%err, "send to client failed");
                self.drop_datagram(UdpDrop::SendFailed);
            }
        }
    }
}

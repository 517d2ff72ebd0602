//! The proxy's own listening addresses as destinations. A proxy that
//! connects to itself only builds loops: each hop costs two sockets and a
//! client can nest handshakes to chain as many as it likes.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Addresses refused with the label `own_address`, as (IP, port) pairs:
/// `SocketAddrV6` equality would also compare flow info and scope id.
#[derive(Debug, Clone, Default)]
pub struct OwnAddresses {
    exact: Vec<(IpAddr, u16)>,
    /// Ports of listeners on an unspecified address, which also answer on
    /// every loopback address (all of 127.0.0.0/8).
    loopback_ports: Vec<u16>,
}

impl OwnAddresses {
    /// Expands `own`: a listener on `0.0.0.0` or `::` takes its port on
    /// every local interface address, read once here.
    pub fn new(own: &[SocketAddr]) -> OwnAddresses {
        let mut result = OwnAddresses::default();
        let mut interfaces: Option<Vec<IpAddr>> = None;
        for addr in own {
            let (ip, port) = (addr.ip().to_canonical(), addr.port());
            if !ip.is_unspecified() {
                result.exact.push((ip, port));
                continue;
            }
            let local = interfaces.get_or_insert_with(interface_addresses);
            // `::` is dual-stack on Linux by default, so it takes IPv4 too.
            let take_v6 = ip.is_ipv6();
            for &local_ip in local.iter() {
                if local_ip.is_ipv4() || take_v6 {
                    result.exact.push((local_ip.to_canonical(), port));
                }
            }
            result.exact.push((IpAddr::V6(Ipv6Addr::LOCALHOST), port));
            result.exact.push((IpAddr::V4(Ipv4Addr::LOCALHOST), port));
            result.loopback_ports.push(port);
        }
        result.exact.sort_unstable();
        result.exact.dedup();
        result
    }

    pub fn contains(&self, addr: SocketAddr) -> bool {
        let ip = addr.ip().to_canonical();
        let port = addr.port();
        (ip.is_loopback() && self.loopback_ports.contains(&port))
            || self.exact.binary_search(&(ip, port)).is_ok()
    }
}

/// Every address configured on a local interface; empty if they cannot be
/// read (the loopback addresses are added by the caller either way).
pub fn interface_addresses() -> Vec<IpAddr> {
    let mut addresses = Vec::new();
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs writes a pointer to a list it allocated into
    // `list`, which we free below with freeifaddrs and never use after.
    if unsafe { libc::getifaddrs(&mut list) } != 0 {
        tracing::warn!(
            err = %std::io::Error::last_os_error(),
            "cannot list interface addresses; only loopback counts as this proxy's own"
        );
        return addresses;
    }
    let mut cursor = list;
    while !cursor.is_null() {
        // SAFETY: `cursor` is a node of the list getifaddrs returned, still
        // allocated; `ifa_addr` is null or points to a sockaddr whose
        // family says which struct it is, as the man page guarantees.
        unsafe {
            let entry = &*cursor;
            if let Some(ip) = sockaddr_ip(entry.ifa_addr) {
                addresses.push(ip);
            }
            cursor = entry.ifa_next;
        }
    }
    // SAFETY: `list` came from a successful getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(list) };
    addresses
}

/// # Safety
/// `addr` is null or points to a valid sockaddr of the family it names.
unsafe fn sockaddr_ip(addr: *const libc::sockaddr) -> Option<IpAddr> {
    if addr.is_null() {
        return None;
    }
    // SAFETY: per this function's contract, and the family field selects
    // the struct the kernel wrote.
    unsafe {
        match i32::from((*addr).sa_family) {
            libc::AF_INET => {
                let v4 = &*addr.cast::<libc::sockaddr_in>();
                Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(v4.sin_addr.s_addr))))
            }
            libc::AF_INET6 => {
                let v6 = &*addr.cast::<libc::sockaddr_in6>();
                Some(IpAddr::V6(Ipv6Addr::from(v6.sin6_addr.s6_addr)))
            }
            _ => None,
        }
    }
}

//! The HTTP listener's [`Limits`], and who may hold a connection ([`Admission`]): at most
//! `max_connections` open at once, and at most `max_per_ip` from one source address.
//! [`Admission::admit`] answers with a [`Slot`] (the connection counts until the slot is
//! dropped: it travels with the socket, through a WebSocket upgrade too) or with why not
//! ([`Refusal`]); refused connections are counted.
//! Plain counting under one lock, taken once per connection and once at its end, never per
//! request or frame.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// The limits of the HTTP listener (`gax serve --http-header-timeout`, `--max-connections`,
/// `--max-connections-per-ip`).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// A request's headers must arrive this soon after the connection is ready for them (also
    /// an idle keep-alive connection's lifetime).
    pub header_timeout: Duration,
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_timeout: Duration::from_secs(10),
            max_connections: 10_000,
            max_connections_per_ip: 1_000,
        }
    }
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The server holds `max_connections` already.
    Full,
    /// This source address holds `max_per_ip` already.
    PerIp,
}

impl Refusal {
    pub const ALL: [Refusal; 2] = [Refusal::Full, Refusal::PerIp];

    /// The `reason` label in `/metrics`.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Full => "server_full",
            Refusal::PerIp => "per_ip",
        }
    }
}

#[derive(Default)]
struct Open {
    total: usize,
    /// Only addresses with open connections: at most `max_connections` entries.
    per_ip: HashMap<IpAddr, usize>,
}

/// The connection counts of one HTTP listener.
pub struct Admission {
    max_connections: usize,
    max_per_ip: usize,
    open: Mutex<Open>,
    refused: [AtomicU64; 2],
}

/// One admitted connection; dropping it frees its place.
pub struct Slot {
    admission: Arc<Admission>,
    ip: IpAddr,
}

impl Admission {
    /// Limits of at least 1.
    pub fn new(max_connections: usize, max_per_ip: usize) -> Arc<Admission> {
        Arc::new(Admission {
            max_connections: max_connections.max(1),
            max_per_ip: max_per_ip.max(1),
            open: Mutex::new(Open::default()),
            refused: Default::default(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Open> {
        // The counts stay consistent even if a holder panicked.
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A place for a connection from `ip`, or why not (counted).
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Slot, Refusal> {
        let mut open = self.lock();
        let refusal = if open.total >= self.max_connections {
            Some(Refusal::Full)
        } else if open.per_ip.get(&ip).is_some_and(|&n| n >= self.max_per_ip) {
            Some(Refusal::PerIp)
        } else {
            None
        };
        if let Some(r) = refusal {
            self.refused[r as usize].fetch_add(1, Ordering::Relaxed);
            return Err(r);
        }
        open.total += 1;
        *open.per_ip.entry(ip).or_default() += 1;
        Ok(Slot {
            admission: self.clone(),
            ip,
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.lock().total
    }

    /// Connections refused so far for `reason`.
    pub fn refused(&self, reason: Refusal) -> u64 {
        self.refused[reason as usize].load(Ordering::Relaxed)
    }

    pub fn max_connections(&self) -> usize {
        self.max_connections
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.admission.lock();
        open.total = open.total.saturating_sub(1);
        if let Some(n) = open.per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.per_ip.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    #[test]
    fn per_address_then_total_limits_and_places_come_back() {
        let a = Admission::new(3, 2);
        let s1 = a.admit(ip(1)).unwrap();
        let s2 = a.admit(ip(1)).unwrap();
        assert_eq!(a.admit(ip(1)).err(), Some(Refusal::PerIp));
        let s3 = a.admit(ip(2)).unwrap();
        assert_eq!(a.admit(ip(3)).err(), Some(Refusal::Full));
        assert_eq!(a.open(), 3);
        assert_eq!(
            (a.refused(Refusal::PerIp), a.refused(Refusal::Full)),
            (1, 1)
        );
        drop(s1);
        let _again = a.admit(ip(1)).expect("a freed place is reusable");
        drop((s2, s3));
        assert_eq!(a.open(), 1);
        assert_eq!(
            a.lock().per_ip.len(),
            1,
            "addresses without connections are forgotten"
        );
    }
}

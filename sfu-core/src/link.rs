//! Links: the hops a producer's packets take to consumers elsewhere, so one room spreads over
//! several worker threads (and, next, several nodes).
//!
//! A [`Link`] names a destination: another worker's ring today ([`crate::relay`]). A producer
//! keeps the links that want its packets; a proxy producer keeps the link its packets come
//! from. Code above the link layer never asks what kind of link it holds, so a link to another
//! node is one more variant here and one more transport beside the rings.

/// Where a producer's packets go to (or a proxy's come from).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Link {
    /// Another worker thread of this node, by index (its ring and command channel).
    Worker(usize),
}

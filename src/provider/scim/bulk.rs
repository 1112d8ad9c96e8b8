//! Packing operations into Bulk requests (RFC 7644 §3.7) within the limits the service
//! announces: at most `maxOperations` operations and `maxPayloadSize` bytes per request
//! (§3.7.4; exceeding either is a 413).
//!
//! Operations are packed greedily in order, so a request holds a contiguous run of them: order
//! matters when a later operation refers to an earlier one by `bulkId`.

use super::wire::{BULK_REQUEST, BulkLimits};

const PREFIX_HEAD: &str = r#"{"schemas":[""#;
const PREFIX_TAIL: &str = r#""],"Operations":["#;
const SUFFIX: &str = "]}";

/// The bytes of a request around its operations.
pub fn envelope_len() -> usize {
    PREFIX_HEAD.len() + BULK_REQUEST.len() + PREFIX_TAIL.len() + SUFFIX.len()
}

/// The request body holding `ops` (each a serialized operation object).
pub fn assemble(ops: &[Vec<u8>]) -> Vec<u8> {
    let len = envelope_len() + ops.iter().map(|o| o.len() + 1).sum::<usize>();
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(PREFIX_HEAD.as_bytes());
    out.extend_from_slice(BULK_REQUEST.as_bytes());
    out.extend_from_slice(PREFIX_TAIL.as_bytes());
    for (i, op) in ops.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(op);
    }
    out.extend_from_slice(SUFFIX.as_bytes());
    out
}

/// Where an operation goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fit {
    /// Into the current request.
    Added,
    /// The current request is full: send it, then add the operation to a new one.
    Full,
    /// Too large for any request: send it on its own, outside Bulk.
    TooLarge,
}

/// Fills one request at a time.
#[derive(Debug, Clone)]
pub struct Packer {
    limits: BulkLimits,
    count: usize,
    size: usize,
}

impl Packer {
    pub fn new(limits: BulkLimits) -> Packer {
        Packer { limits, count: 0, size: envelope_len() }
    }

    /// Tries to add an operation of `len` bytes.
    pub fn try_add(&mut self, len: usize) -> Fit {
        if envelope_len() + len > self.limits.max_payload_size {
            return Fit::TooLarge;
        }
        let add = len + usize::from(self.count > 0);
        if self.count >= self.limits.max_operations || self.size + add > self.limits.max_payload_size {
            return Fit::Full;
        }
        self.count += 1;
        self.size += add;
        Fit::Added
    }

    /// Starts a new request.
    pub fn reset(&mut self) {
        self.count = 0;
        self.size = envelope_len();
    }
}

#[cfg(test)]
/// Splits operations of the given sizes into requests (the indices each holds, in order);
/// operations too large for any request are returned apart.
pub fn split(sizes: &[usize], limits: BulkLimits) -> (Vec<Vec<usize>>, Vec<usize>) {
    let mut packer = Packer::new(limits);
    let mut requests = Vec::new();
    let mut too_large = Vec::new();
    let mut current = Vec::new();
    for (i, &len) in sizes.iter().enumerate() {
        match packer.try_add(len) {
            Fit::Added => current.push(i),
            Fit::TooLarge => too_large.push(i),
            Fit::Full => {
                requests.push(std::mem::take(&mut current));
                packer.reset();
                let fit = packer.try_add(len);
                debug_assert_eq!(fit, Fit::Added);
                current.push(i);
            }
        }
    }
    if !current.is_empty() {
        requests.push(current);
    }
    (requests, too_large)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(ops: usize, size: usize) -> BulkLimits {
        BulkLimits { max_operations: ops, max_payload_size: size }
    }

    #[test]
    fn the_envelope_is_what_assemble_writes() {
        assert_eq!(assemble(&[]).len(), envelope_len());
        let body = assemble(&[b"{\"a\":1}".to_vec(), b"{}".to_vec()]);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["Operations"], serde_json::json!([{"a": 1}, {}]));
        assert_eq!(v["schemas"][0], BULK_REQUEST);
    }

    #[test]
    fn split_by_operation_count() {
        let (reqs, big) = split(&[10; 2500], limits(1000, 1 << 20));
        let ranges: Vec<(usize, usize)> = reqs.iter().map(|r| (r[0], r.len())).collect();
        assert_eq!(ranges, vec![(0, 1000), (1000, 1000), (2000, 500)]);
        assert!(big.is_empty());
        assert_eq!(split(&[], limits(10, 1000)), (vec![], vec![]));
    }

    #[test]
    fn split_by_payload_size() {
        // Room for exactly three 100-byte operations (and their two commas).
        let cap = envelope_len() + 302;
        let (reqs, _) = split(&[100; 7], limits(1000, cap));
        assert_eq!(reqs, vec![vec![0, 1, 2], vec![3, 4, 5], vec![6]]);
        let (reqs, _) = split(&[100; 7], limits(1000, cap - 1));
        assert_eq!(reqs, vec![vec![0, 1], vec![2, 3], vec![4, 5], vec![6]]);
        // Every request really is within the limit.
        let sizes: Vec<usize> = (0..200).map(|i| 50 + (i * 37) % 400).collect();
        let lim = limits(17, 3000);
        let (reqs, big) = split(&sizes, lim);
        assert!(big.is_empty());
        assert_eq!(reqs.iter().map(|r| r.len()).sum::<usize>(), sizes.len());
        for r in &reqs {
            let ops: Vec<Vec<u8>> = r.iter().map(|&i| vec![b'x'; sizes[i]]).collect();
            assert!(assemble(&ops).len() <= lim.max_payload_size);
            assert!(ops.len() <= lim.max_operations);
        }
        // Contiguous and in order.
        let flat: Vec<usize> = reqs.concat();
        assert_eq!(flat, (0..sizes.len()).collect::<Vec<_>>());
    }

    #[test]
    fn an_operation_too_large_for_any_request_goes_apart() {
        let cap = envelope_len() + 100;
        let (reqs, big) = split(&[50, 101, 40, 60], limits(10, cap));
        assert_eq!(big, vec![1]);
        // The oversized one is set apart; the rest still pack in order around it.
        assert_eq!(reqs, vec![vec![0, 2], vec![3]]);
    }
}

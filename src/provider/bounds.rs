//! Bounds on one read of a collection: a service that pages without end (a next page that is
//! always there, a `startIndex` that never reaches `totalResults`) is stopped with an error
//! naming the bound, instead of reading for ever.

use std::time::{Duration, Instant};

/// How much one read of a collection may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadLimits {
    /// Pages (requests) per collection.
    pub max_pages: usize,
    /// Objects per collection.
    pub max_objects: usize,
    /// Time per collection, from its first request.
    pub max_time: Duration,
}

impl Default for ReadLimits {
    /// Far above the largest directories keyward reconciles (a million accounts), far below
    /// what a service paging without end would make keyward read.
    fn default() -> Self {
        ReadLimits { max_pages: 50_000, max_objects: 2_000_000, max_time: Duration::from_secs(30 * 60) }
    }
}

/// A bound that one read went past.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BoundError {
    #[error("the service returned more than {0} pages; it seems to page without end")]
    Pages(usize),
    #[error("the service returned more than {0} objects; it seems to page without end")]
    Objects(usize),
    #[error("the read took more than {} s; it seems to page without end", .0.as_secs())]
    Time(Duration),
}

/// What one read has used so far.
#[derive(Debug)]
pub struct ReadBudget {
    limits: ReadLimits,
    started: Instant,
    pages: usize,
    objects: usize,
}

impl ReadBudget {
    pub fn new(limits: ReadLimits) -> Self {
        ReadBudget { limits, started: Instant::now(), pages: 0, objects: 0 }
    }

    /// Counts one page of `objects` objects; an error once a bound is passed.
    pub fn page(&mut self, objects: usize) -> Result<(), BoundError> {
        self.pages += 1;
        self.objects = self.objects.saturating_add(objects);
        if self.pages > self.limits.max_pages {
            return Err(BoundError::Pages(self.limits.max_pages));
        }
        if self.objects > self.limits.max_objects {
            return Err(BoundError::Objects(self.limits.max_objects));
        }
        if self.started.elapsed() > self.limits.max_time {
            return Err(BoundError::Time(self.limits.max_time));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_bound_stops_a_read() {
        let limits = ReadLimits { max_pages: 3, max_objects: 10, max_time: Duration::from_secs(60) };
        let mut b = ReadBudget::new(limits);
        assert!((0..3).all(|_| b.page(1).is_ok()));
        assert_eq!(b.page(1), Err(BoundError::Pages(3)));
        let mut b = ReadBudget::new(limits);
        assert_eq!(b.page(10), Ok(()));
        assert_eq!(b.page(1), Err(BoundError::Objects(10)));
        let mut b = ReadBudget::new(ReadLimits { max_time: Duration::ZERO, ..limits });
        std::thread::sleep(Duration::from_millis(2));
        assert_eq!(b.page(1), Err(BoundError::Time(Duration::ZERO)));
    }
}

//! `struct list_head` walks: bounded, cycle-guarded, fallible iterators.
//!
//! A kernel list is circular: `head.next` → node → ... → `head`. The walk yields the
//! address of each node (a `list_head` embedded in an element; subtract the member's offset
//! for the element) and ends when it comes back to the head. It stops early, yielding one
//! `Err`, on a fault, a NULL link, a node seen before (a cycle that avoids the head, as a
//! list being modified under us can form), or after `max` nodes.

use std::collections::HashSet;

use super::Linux;
use crate::osi::Incomplete;

/// Iterator over the nodes of a circular `list_head` list (the head itself excluded).
pub struct ListIter<'l, 'a> {
    linux: &'l Linux<'a>,
    head: u64,
    next: u64,
    seen: HashSet<u64>,
    max: usize,
    done: bool,
}

impl<'l, 'a> ListIter<'l, 'a> {
    /// Walks the list whose head (a `list_head` not inside an element, such as `modules`,
    /// or the `tasks` of `init_task`) is at `head`.
    pub fn new(linux: &'l Linux<'a>, head: u64, max: usize) -> Self {
        ListIter {
            linux,
            head,
            next: head,
            seen: HashSet::new(),
            max,
            done: false,
        }
    }

    fn step(&mut self) -> Result<Option<u64>, Incomplete> {
        let node = self.linux.read_ptr(self.next)?;
        if node == self.head {
            return Ok(None);
        }
        if node == 0 {
            return Err(Incomplete::Corrupt {
                what: "NULL list_head.next",
                at: self.next,
            });
        }
        if self.seen.len() >= self.max {
            return Err(Incomplete::Limit { max: self.max });
        }
        if !self.seen.insert(node) {
            return Err(Incomplete::Cycle { at: node });
        }
        self.next = node;
        Ok(Some(node))
    }
}

impl Iterator for ListIter<'_, '_> {
    type Item = Result<u64, Incomplete>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.step() {
            Ok(Some(node)) => Some(Ok(node)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

/// Collects a fallible walk into items and the reason it stopped early, if any.
pub fn collect<T>(
    iter: impl Iterator<Item = Result<T, Incomplete>>,
) -> (Vec<T>, Option<Incomplete>) {
    let mut items = Vec::new();
    for item in iter {
        match item {
            Ok(item) => items.push(item),
            Err(e) => return (items, Some(e)),
        }
    }
    (items, None)
}

/// The element containing the `list_head` at `node`, whose member offset is `offset`
/// (`container_of`).
pub fn container_of(node: u64, offset: i64) -> u64 {
    node.wrapping_add_signed(offset.wrapping_neg())
}

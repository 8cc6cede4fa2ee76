//! The store's log tables: the embedded store as a log (`channel/store_log.rs` runs it under the log
//! layer). Written by the store's writer, in its transactions (one group commit, one failure model with
//! the queue tables); read back by the broker's consumer.
//!
//! | table | key | value | meaning |
//! |---|---|---|---|
//! | `log/{ns}/{broker}` | `u64` position | encoded event | the broker's events not yet trimmed |
//! | `done/{ns}/{broker}` | `u64` position | `()` | positions every trigger finished above the lowest owed one |
//! | `meta` | `log-next/{ns}/{broker}` | `u64` | the broker's next position (positions never go back) |

use super::{corrupt, storage};
use crate::channel::Result;
use crate::event::Event;
use redb::{ReadTransaction, ReadableTable, Table, TableDefinition, WriteTransaction};
use std::collections::BTreeSet;
use std::sync::Arc;

/// Events handed to a broker's consumer after the commit that wrote them: positions
/// `first..first + events.len()`.
pub(crate) struct Tail {
    pub(crate) first: u64,
    pub(crate) events: Vec<Event>,
}

/// Where the writer hands a broker's committed batches.
pub(crate) struct TailSender {
    pub(crate) tail: tokio::sync::mpsc::Sender<Tail>,
    /// Set when a batch was dropped because `tail` was full.
    pub(crate) lagging: Arc<std::sync::atomic::AtomicBool>,
}

/// A batch for a broker's log table.
pub(crate) struct LogAppend {
    /// The broker's log table (`log/{ns}/{broker}`).
    pub(crate) table: Arc<str>,
    pub(crate) events: Vec<Event>,
    /// The events' storage encodings, back to back; `ends[i]` is where event `i` ends.
    pub(crate) encoded: Vec<u8>,
    pub(crate) ends: Vec<usize>,
}

/// Removes a broker's positions below `below` and records `done` (finished positions at or above it).
pub(crate) struct LogTrim {
    pub(crate) table: Arc<str>,
    pub(crate) done_table: Arc<str>,
    pub(crate) below: u64,
    pub(crate) done: Vec<u64>,
}

fn log_def(name: &str) -> TableDefinition<'_, u64, &'static [u8]> {
    TableDefinition::new(name)
}

fn done_def(name: &str) -> TableDefinition<'_, u64, ()> {
    TableDefinition::new(name)
}

fn next_key(table: &str) -> String {
    format!("log-next/{table}")
}

/// Writes `append` at the broker's next position (`cached`, or read from the database after a restart
/// or a failed batch); returns the first position.
pub(crate) fn append(
    txn: &WriteTransaction,
    meta: &mut Table<'_, &'static str, u64>,
    cached: Option<u64>,
    append: &LogAppend,
) -> Result<u64> {
    let mut t = txn.open_table(log_def(&append.table)).map_err(storage)?;
    let first = match cached {
        Some(p) => p,
        None => {
            let last = t.last().map_err(storage)?.map_or(0, |(k, _)| k.value() + 1);
            let key = next_key(&append.table);
            let recorded = meta.get(key.as_str()).map_err(storage)?;
            last.max(recorded.map_or(0, |v| v.value()))
        }
    };
    let mut start = 0;
    for (i, &end) in append.ends.iter().enumerate() {
        let bytes = append
            .encoded
            .get(start..end)
            .ok_or_else(|| corrupt("log append frame"))?;
        t.insert(first + i as u64, bytes).map_err(storage)?;
        start = end;
    }
    let next = first + append.ends.len() as u64;
    meta.insert(next_key(&append.table).as_str(), next)
        .map_err(storage)?;
    Ok(first)
}

/// Applies a trim.
pub(crate) fn trim(txn: &WriteTransaction, trim: &LogTrim) -> Result<()> {
    let mut t = txn.open_table(log_def(&trim.table)).map_err(storage)?;
    t.retain_in(..trim.below, |_, _| false).map_err(storage)?;
    let mut d = txn
        .open_table(done_def(&trim.done_table))
        .map_err(storage)?;
    d.retain_in(..trim.below, |_, _| false).map_err(storage)?;
    for &pos in trim.done.iter().filter(|&&p| p >= trim.below) {
        d.insert(pos, ()).map_err(storage)?;
    }
    Ok(())
}

/// Positions `from..to` (to the end without `to`) of a broker's log, at most `limit` of them.
pub(crate) fn read(
    txn: &ReadTransaction,
    table: &str,
    from: u64,
    to: Option<u64>,
    limit: usize,
) -> Result<Vec<(u64, Event)>> {
    let t = match txn.open_table(log_def(table)) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(e) => return Err(storage(e)),
    };
    let range = match to {
        Some(to) => t.range(from..to),
        None => t.range(from..),
    }
    .map_err(storage)?;
    let mut out = Vec::new();
    for row in range.take(limit) {
        let (k, v) = row.map_err(storage)?;
        let event = crate::format::codec::decode(v.value())
            .map_err(|e| corrupt(format_args!("{table}@{}: {e}", k.value())))?;
        out.push((k.value(), event));
    }
    Ok(out)
}

/// Where a broker's consumer starts (its first untrimmed position, or the next position of an emptied
/// log) and the positions above it that were finished before.
pub(crate) fn start(
    txn: &ReadTransaction,
    table: &str,
    done_table: &str,
) -> Result<(u64, BTreeSet<u64>)> {
    let first = match txn.open_table(log_def(table)) {
        Ok(t) => t.first().map_err(storage)?.map(|(k, _)| k.value()),
        Err(redb::TableError::TableDoesNotExist(_)) => None,
        Err(e) => return Err(storage(e)),
    };
    let start = match first {
        Some(p) => p,
        None => match txn.open_table(super::META) {
            Ok(meta) => meta
                .get(next_key(table).as_str())
                .map_err(storage)?
                .map_or(0, |v| v.value()),
            Err(redb::TableError::TableDoesNotExist(_)) => 0,
            Err(e) => return Err(storage(e)),
        },
    };
    let done = match txn.open_table(done_def(done_table)) {
        Ok(d) => d
            .range(start..)
            .map_err(storage)?
            .map(|r| r.map(|(k, _)| k.value()).map_err(storage))
            .collect::<Result<BTreeSet<u64>>>()?,
        Err(redb::TableError::TableDoesNotExist(_)) => BTreeSet::new(),
        Err(e) => return Err(storage(e)),
    };
    Ok((start, done))
}

//! The embedded store's two possible shapes, measured on redb itself (issue 12's "store as a log under the
//! shared layer, or its own queue tables" decision).
//!
//! `cargo run --release -p switchyard-broker --example store_shapes -- [EVENTS] [TRIGGERS] [ROUNDS]`
//!
//! Both shapes run the store's steady state the way the writer does it: batches of 64 ~1 KiB events
//! appended in one durable (fsync'd) transaction, and the previous batch's acks applied in one
//! non-durable transaction (every 64th ack-only commit durable), each event routed to TRIGGERS triggers
//! (default 1).
//!
//! - **tables** (today's store): `events` + one `queue` row per (trigger, event) (+ a `refs` row when
//!   several triggers share it); an ack removes the trigger's queue rows of the batch (a range) and the
//!   events no row references any more.
//! - **log**: `events` only; each trigger has a committed position (one `cursors` row per trigger, written
//!   with its acks); an ack moves the trigger's position past the batch, and events below every trigger's
//!   position are removed (a range).
//!
//! Prints events/s of each shape per round, alternating, and the ratio log ÷ tables.

use redb::{
    Database, Durability, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition,
};
use std::time::Instant;

const EVENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("events");
const REFS: TableDefinition<u64, u32> = TableDefinition::new("refs");
const QUEUE: TableDefinition<(u64, u64), ()> = TableDefinition::new("queue");
const CURSORS: TableDefinition<u64, u64> = TableDefinition::new("cursors");

const BATCH: u64 = 64;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Shape {
    Tables,
    Log,
}

fn durability(ack_commits: &mut u64) -> Durability {
    *ack_commits += 1;
    if *ack_commits % 64 == 0 {
        Durability::Immediate
    } else {
        Durability::None
    }
}

fn run(shape: Shape, events: u64, triggers: u64) -> Result<f64, Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let db = Database::builder()
        .set_cache_size(32 << 20)
        .create(dir.path().join("store.redb"))?;
    {
        let tx = db.begin_write()?;
        tx.open_table(EVENTS)?;
        tx.open_table(REFS)?;
        tx.open_table(QUEUE)?;
        tx.open_table(CURSORS)?;
        tx.commit()?;
    }
    let payload = vec![b'x'; 1024];
    let mut ack_commits = 0u64;
    let started = Instant::now();
    let batches = events / BATCH;
    for b in 0..=batches {
        // Append batch b (durable).
        if b < batches {
            let tx = db.begin_write()?;
            {
                let mut ev = tx.open_table(EVENTS)?;
                let mut queue = tx.open_table(QUEUE)?;
                let mut refs = tx.open_table(REFS)?;
                for seq in b * BATCH..(b + 1) * BATCH {
                    ev.insert(seq, payload.as_slice())?;
                    if shape == Shape::Tables {
                        for t in 0..triggers {
                            queue.insert((t, seq), ())?;
                        }
                        if triggers > 1 {
                            refs.insert(seq, triggers as u32)?;
                        }
                    }
                }
            }
            tx.commit()?;
        }
        // Ack batch b - 1 (every trigger delivered it), non-durable as the writer does.
        if b > 0 {
            let (lo, hi) = ((b - 1) * BATCH, b * BATCH);
            let mut tx = db.begin_write()?;
            tx.set_durability(durability(&mut ack_commits))?;
            {
                let mut ev = tx.open_table(EVENTS)?;
                match shape {
                    Shape::Tables => {
                        let mut queue = tx.open_table(QUEUE)?;
                        let mut refs = tx.open_table(REFS)?;
                        for t in 0..triggers {
                            queue.retain_in((t, lo)..(t, hi), |_, _| false)?;
                        }
                        if triggers > 1 {
                            refs.retain_in(lo..hi, |_, _| false)?;
                        }
                        ev.retain_in(lo..hi, |_, _| false)?;
                    }
                    Shape::Log => {
                        let mut cursors = tx.open_table(CURSORS)?;
                        for t in 0..triggers {
                            cursors.insert(t, hi)?;
                        }
                        // The lowest position of all triggers: everything below it is gone.
                        let mut low = u64::MAX;
                        for entry in cursors.iter()? {
                            low = low.min(entry?.1.value());
                        }
                        ev.retain_in(..low, |_, _| false)?;
                    }
                }
            }
            tx.commit()?;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    // Sanity: everything was acked in both shapes.
    let rx = db.begin_read()?;
    assert_eq!(rx.open_table(EVENTS)?.len()?, 0, "{shape:?}: events left");
    Ok((batches * BATCH) as f64 / secs)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let events: u64 = args.first().map_or(Ok(64_000), |s| s.parse())?;
    let triggers: u64 = args.get(1).map_or(Ok(1), |s| s.parse())?;
    let rounds: u32 = args.get(2).map_or(Ok(3), |s| s.parse())?;
    println!("| round | tables events/s | log events/s | log ÷ tables |");
    println!("|---|---|---|---|");
    let (mut sum_t, mut sum_l) = (0.0, 0.0);
    for r in 1..=rounds {
        let t = run(Shape::Tables, events, triggers)?;
        let l = run(Shape::Log, events, triggers)?;
        sum_t += t;
        sum_l += l;
        println!("| {r} | {t:.0} | {l:.0} | {:.2} |", l / t);
    }
    println!(
        "| mean | {:.0} | {:.0} | {:.2} |",
        sum_t / f64::from(rounds),
        sum_l / f64::from(rounds),
        sum_l / sum_t
    );
    Ok(())
}

//! Rows bound as one JSON array per statement, cut to a size that crosses
//! the network in one write.
//!
//! sqlx does not set TCP_NODELAY on PostgreSQL connections, and over TLS
//! (sqlx's default `sslmode=prefer` takes it whenever the server offers it)
//! a statement larger than one TLS record (16 KiB) goes out as two writes.
//! Nagle's algorithm holds the second until the server acknowledges the
//! first, and the server delays that acknowledgement by up to 40 ms, waiting
//! for the rest of the statement. A burst's group commit (hundreds of event
//! bodies in one INSERT) stalled on this at every group: about 250
//! completions/s with the machine 80% idle (`strace` showed the 43 ms gap).
//! Statements kept under `MAX_PG_BYTES` never wait.
//!
//! SQLite has no socket, but its arrays are cut too, under
//! `MAX_SQLITE_BYTES`: a buffer over 84 KiB is a large object to mimalloc,
//! in a 4 MiB page of its own that is mapped from the OS, faulted in zeroed
//! and unmapped for each group (see `crate::alloc`), and sqlx copies every
//! argument once more. A statement more per 64 KiB costs less than that.

use serde::Serialize;

use super::Backend;

/// Largest JSON argument sent to PostgreSQL in one statement: with the SQL
/// text and the other arguments, the statement still fits one TLS record.
const MAX_PG_BYTES: usize = 12 * 1024;
/// Largest JSON argument of one SQLite statement: with its buffer's one
/// spare byte, under mimalloc's largest medium object (about 84 KiB).
pub const MAX_SQLITE_BYTES: usize = 64 * 1024;

/// PostgreSQL: the `id` of every row of the JSON array `$1` as a condition
/// on `t.id`, for statements that join `json_to_recordset($1)` to
/// `transfers AS t` (see `ending::END_MANY_POSTGRES`).
macro_rules! ids_of_rows {
    () => {
        "t.id = ANY(ARRAY(SELECT r->>'id' FROM json_array_elements($1::json) AS r))"
    };
}
pub(super) use ids_of_rows;

/// On SQLite, a statement that fails unless the statement just before it
/// changed `$1` rows (`changes()`), with `$message` in its error. It goes
/// between the statements of one hand-off (see `Conn::with_next`), where
/// the caller cannot look at a count before the COMMIT: SQLite stops at the
/// failure, and the COMMIT behind never runs. A bad JSON path is an error
/// SQLite raises from a query, and its message quotes the path.
macro_rules! changed_exactly {
    ($message:literal) => {
        concat!(
            "SELECT json_extract('{}', CASE WHEN changes() = $1 THEN '$' ELSE '",
            $message,
            "' END)"
        )
    };
}
pub(super) use changed_exactly;

/// `rows` as JSON arrays, each small enough for one segment on PostgreSQL
/// and a medium object to the allocator on SQLite.
///
/// Rows are serialized into one reused buffer (no string per row), and an
/// array's buffer is reserved up front for the rows left at its first
/// row's size, within the limit: a burst's
/// group of endings is hundreds of event bodies, and growing one string
/// by doubling copied it over and over, each copy into fresh pages (3% of
/// the bridge's CPU in a 10,000-completion burst, page faults included).
pub fn json_arrays<T: Serialize>(backend: Backend, rows: &[T]) -> Vec<String> {
    counted_json_arrays(backend, rows)
        .into_iter()
        .map(|(array, _)| array)
        .collect()
}

/// As [`json_arrays`], each array with the number of rows in it: for a
/// statement that checks it changed every row of its array.
pub fn counted_json_arrays<T: Serialize>(backend: Backend, rows: &[T]) -> Vec<(String, usize)> {
    let limit = match backend {
        Backend::Sqlite => MAX_SQLITE_BYTES,
        Backend::Postgres => MAX_PG_BYTES,
    };
    let mut arrays = Vec::new();
    let mut count = 0;
    let mut current = Vec::new();
    let mut row = Vec::new();
    for (i, item) in rows.iter().enumerate() {
        row.clear();
        serde_json::to_writer(&mut row, item).expect("rows serialize");
        // With this row, the array grows by a comma and the row, and ends
        // with a closing bracket.
        if !current.is_empty() && current.len() + 1 + row.len() + 1 > limit {
            arrays.push((close(std::mem::take(&mut current)), count));
            count = 0;
        }
        if current.is_empty() {
            // Room for the rows left at this row's size, within the limit.
            let estimate = (rows.len() - i).saturating_mul(row.len() + 1) + 2;
            current.reserve(estimate.min(limit.saturating_add(1)));
            current.push(b'[');
        } else {
            current.push(b',');
        }
        current.extend_from_slice(&row);
        count += 1;
    }
    if !current.is_empty() {
        arrays.push((close(current), count));
    }
    arrays
}

/// An array's buffer, `]` appended, as text.
fn close(mut array: Vec<u8>) -> String {
    array.push(b']');
    String::from_utf8(array).expect("serde_json writes UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrays_stay_under_the_limit_and_keep_every_row_in_order() {
        let rows: Vec<String> = (0..500).map(|i| format!("{i:0>100}")).collect();
        let arrays = json_arrays(Backend::Postgres, &rows);
        assert!(arrays.len() > 1, "{} arrays", arrays.len());
        assert!(arrays.iter().all(|a| a.len() <= MAX_PG_BYTES));
        let back: Vec<String> = arrays
            .iter()
            .flat_map(|a| serde_json::from_str::<Vec<String>>(a).unwrap())
            .collect();
        assert_eq!(back, rows);
        assert_eq!(json_arrays(Backend::Sqlite, &rows).len(), 1);
        assert!(json_arrays::<String>(Backend::Postgres, &[]).is_empty());
    }

    #[test]
    fn sqlite_arrays_stay_medium_sized_and_count_their_rows() {
        // A burst's group of actions: 256 event bodies of about 1 KiB.
        let rows: Vec<String> = (0..256).map(|i| format!("{i:0>1000}")).collect();
        let arrays = counted_json_arrays(Backend::Sqlite, &rows);
        assert!(arrays.len() > 1, "{} arrays", arrays.len());
        assert!(arrays.iter().all(|(a, _)| a.len() <= MAX_SQLITE_BYTES));
        let mut back = Vec::new();
        for (array, count) in &arrays {
            let items: Vec<String> = serde_json::from_str(array).unwrap();
            assert_eq!(items.len(), *count);
            back.extend(items);
        }
        assert_eq!(back, rows);
    }

    proptest::proptest! {
        /// Greedy packing: every row once, in order; an array over the
        /// limit holds one row only; and the next array's first row would
        /// not have fit in the array before it.
        #[test]
        fn arrays_pack_rows_greedily(sizes in proptest::collection::vec(0usize..6000, 0..40)) {
            let rows: Vec<String> = sizes.iter().map(|n| "x".repeat(*n)).collect();
            let arrays = json_arrays(Backend::Postgres, &rows);
            let parsed: Vec<Vec<String>> = arrays
                .iter()
                .map(|a| serde_json::from_str(a).unwrap())
                .collect();
            proptest::prop_assert_eq!(parsed.concat(), rows.clone());
            for (array, items) in arrays.iter().zip(&parsed) {
                proptest::prop_assert!(array.len() <= MAX_PG_BYTES || items.len() == 1);
            }
            for (before, next) in arrays.iter().zip(parsed.iter().skip(1)) {
                let first = serde_json::to_string(&next[0]).unwrap();
                // `before` with the row would be `before` (its closing
                // bracket standing in for the comma), the row, a new bracket.
                proptest::prop_assert!(before.len() + first.len() + 1 > MAX_PG_BYTES);
            }
        }
    }
}

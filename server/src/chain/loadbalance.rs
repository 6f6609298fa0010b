//! CoreDNS's `loadbalance` (round_robin) on a response in place: the address records of the
//! answer section are rotated by a random offset, so clients that take the first address spread
//! over all of them. Allocation-free: a run of A (or AAAA) records of one owner has records of
//! one length, so rotating the run's bytes rotates the records and every compression pointer
//! into them still finds the same owner bytes. CNAMEs before the addresses stay first.

use std::cell::Cell;

use clusterdns_zone::wire::{read_u16, skip_name, HEADER_LEN, TYPE_A, TYPE_AAAA};

/// Answer records examined at most.
const MAX_RECORDS: usize = 64;

thread_local! {
    /// A xorshift state per thread: cheap, and no two workers share a cache line.
    static RANDOM: Cell<u64> = Cell::new(seed());
}

fn seed() -> u64 {
    let local = 0u8;
    let address = &local as *const u8 as u64;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    (address ^ nanos) | 1
}

fn next_random() -> u64 {
    RANDOM.with(|state| {
        let mut x = state.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        state.set(x);
        x
    })
}

/// Rotates the longest run of same-owner A or AAAA records in the answer section of
/// `response` by a random offset; leaves anything it cannot read as it is.
pub fn rotate(response: &mut [u8]) {
    let Some((start, len, count)) = address_run(response) else {
        return;
    };
    let by = (next_random() % count as u64) as usize;
    if by > 0 {
        response[start..start + len * count].rotate_left(by * len);
    }
}

/// Where the longest run of consecutive address records with one owner encoding starts, the
/// length of each, and how many there are (at least two).
fn address_run(response: &[u8]) -> Option<(usize, usize, usize)> {
    let questions = read_u16(response, 4)?;
    let answers = usize::from(read_u16(response, 6)?);
    let mut at = HEADER_LEN;
    for _ in 0..questions {
        at = skip_name(response, at)? + 4;
    }
    let mut best: Option<(usize, usize, usize)> = None;
    let mut run: Option<(usize, usize, usize, usize)> = None; // start, len, count, owner len
    for _ in 0..answers.min(MAX_RECORDS) {
        let owner_end = skip_name(response, at)?;
        let rtype = read_u16(response, owner_end)?;
        let rdlen = usize::from(read_u16(response, owner_end + 8)?);
        let end = owner_end + 10 + rdlen;
        if end > response.len() {
            return None;
        }
        let len = end - at;
        let owner = &response[at..owner_end];
        run = match run {
            Some((start, run_len, count, owner_len))
                if (rtype == TYPE_A || rtype == TYPE_AAAA)
                    && run_len == len
                    && owner_len == owner.len()
                    && response[start..start + owner_len] == *owner
                    && read_u16(response, start + owner_len) == Some(rtype) =>
            {
                Some((start, run_len, count + 1, owner_len))
            }
            _ if rtype == TYPE_A || rtype == TYPE_AAAA => Some((at, len, 1, owner.len())),
            _ => None,
        };
        if let Some((start, run_len, count, _)) = run {
            if count >= 2 && best.is_none_or(|(_, _, c)| count > c) {
                best = Some((start, run_len, count));
            }
        }
        at = end;
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A response to `web.` A with a CNAME-free answer of `n` A records 10.0.0.1.. .
    fn response(n: u8) -> Vec<u8> {
        let mut packet = vec![0, 1, 0x81, 0x80, 0, 1, 0, n, 0, 0, 0, 0];
        packet.extend_from_slice(b"\x03web\x00\x00\x01\x00\x01");
        for i in 1..=n {
            packet.extend_from_slice(&[0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 5, 0, 4, 10, 0, 0, i]);
        }
        packet
    }

    fn order(packet: &[u8]) -> Vec<u8> {
        packet[21..].chunks(16).map(|r| r[15]).collect()
    }

    #[test]
    fn rotates_address_records_and_keeps_them_all() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            let mut packet = response(4);
            rotate(&mut packet);
            let mut got = order(&packet);
            seen.insert(got[0]);
            got.sort();
            assert_eq!(got, vec![1, 2, 3, 4]);
        }
        assert_eq!(seen.len(), 4, "every record comes first sometimes");
    }

    #[test]
    fn leaves_single_records_and_garbage_alone() {
        let mut one = response(1);
        let before = one.clone();
        rotate(&mut one);
        assert_eq!(one, before);
        let mut cut = response(3);
        cut.truncate(40);
        let before = cut.clone();
        rotate(&mut cut);
        assert_eq!(cut, before);
    }
}

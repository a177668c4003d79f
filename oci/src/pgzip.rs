//! pigz-style parallel gzip: one valid single-member gzip stream, compressed in
//! fixed 1 MiB blocks on worker threads.
//!
//! Each block is raw deflate primed with the last 32 KiB of the block before it (so
//! ratios stay close to a serial stream) and ends with a sync flush, which leaves it
//! byte aligned, so the blocks concatenate. Inside a block, 64 KiB pieces whose byte
//! entropy says deflate cannot shrink them are written as stored blocks instead of
//! being run through the matcher: that is what makes already-compressed or random
//! data cost a copy, not a compression.
//!
//! The bytes depend only on the input (block boundaries and the stored/compressed
//! choice are functions of the data, never of the thread count or timing), so a layer
//! gets the same digest on every machine.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use flate2::{Compress, FlushCompress, Status};

/// Uncompressed bytes per parallel block.
const BLOCK: usize = 1 << 20;
/// Deflate's window: how much of the previous block primes the next.
const WINDOW: usize = 32 << 10;
/// The unit of the stored-or-compressed decision.
const PIECE: usize = 64 << 10;
/// Bits per byte above which a piece is stored. Uniform random 64 KiB measures about
/// 7.997; Huffman coding alone could save under 0.4% above this, and matches would
/// need repeats within 32 KiB that such data does not have.
const STORE_ENTROPY: f64 = 7.97;
/// gzip header: deflate, no flags, mtime 0, no extra flags, OS unknown (as Go writes it).
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
/// An empty final block with fixed Huffman codes: ends the deflate stream.
const FINAL_BLOCK: [u8; 2] = [0x03, 0x00];

type BlockResult = io::Result<(Vec<u8>, crc32fast::Hasher)>;

/// A compressed block, and the buffers it used, to be used again: the same few
/// megabytes go round instead of being allocated on one thread and freed on
/// another for every block (which an allocator holds on to for a while).
type JobResult = (BlockResult, Vec<u8>);

struct Job {
    dict: Vec<u8>,
    data: Vec<u8>,
    out: Vec<u8>,
    level: u32,
    reply: SyncSender<JobResult>,
}

struct Pool {
    jobs: Option<mpsc::Sender<Job>>,
    workers: Vec<JoinHandle<()>>,
}

impl Pool {
    fn new(threads: usize) -> Self {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let workers = (0..threads)
            .map(|_| {
                let rx = Arc::clone(&rx);
                std::thread::spawn(move || {
                    loop {
                        // The lock is held only to take one job.
                        let job = match rx.lock() {
                            Ok(rx) => rx.recv(),
                            Err(_) => return,
                        };
                        let Ok(job) = job else { return };
                        let Job {
                            dict,
                            data,
                            mut out,
                            level,
                            reply,
                        } = job;
                        out.clear();
                        let result = compress_block_into(&dict, &data, level, out);
                        let _ = reply.send((result, data));
                    }
                })
            })
            .collect();
        Self {
            jobs: Some(tx),
            workers,
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.jobs.take();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

/// A `Write` that gzips what it is given; [`GzipWriter::finish`] ends the stream.
pub(crate) struct GzipWriter<W: Write> {
    out: W,
    level: u32,
    threads: usize,
    block: Vec<u8>,
    /// The last [`WINDOW`] bytes of the previous block.
    dict: Vec<u8>,
    crc: crc32fast::Hasher,
    size: u64,
    header_written: bool,
    pool: Option<Pool>,
    inflight: VecDeque<Receiver<JobResult>>,
    /// Emptied input and output buffers, for the next blocks.
    spare: Vec<Vec<u8>>,
}

impl<W: Write> GzipWriter<W> {
    pub(crate) fn new(out: W, level: u32) -> Self {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self::with_threads(out, level, threads)
    }

    pub(crate) fn with_threads(out: W, level: u32, threads: usize) -> Self {
        Self {
            out,
            level,
            threads: threads.max(1),
            block: Vec::with_capacity(BLOCK),
            dict: Vec::new(),
            crc: crc32fast::Hasher::new(),
            size: 0,
            header_written: false,
            pool: None,
            inflight: VecDeque::new(),
            spare: Vec::new(),
        }
    }

    /// Compresses what is buffered, ends the stream and returns the inner writer.
    pub(crate) fn finish(mut self) -> io::Result<W> {
        if self.pool.is_none() {
            let data = std::mem::take(&mut self.block);
            let (bytes, crc) = compress_block(&self.dict, &data, self.level)?;
            self.emit(&bytes, &crc)?;
        } else {
            if !self.block.is_empty() {
                self.dispatch()?;
            }
            while !self.inflight.is_empty() {
                self.drain_one()?;
            }
        }
        self.header()?;
        self.out.write_all(&FINAL_BLOCK)?;
        self.out
            .write_all(&self.crc.clone().finalize().to_le_bytes())?;
        // ISIZE is the length modulo 2^32 by definition.
        self.out.write_all(&(self.size as u32).to_le_bytes())?;
        let Self { out, pool, .. } = self;
        // Joins the workers, which are idle by now.
        drop(pool);
        Ok(out)
    }

    fn header(&mut self) -> io::Result<()> {
        if !self.header_written {
            self.out.write_all(&HEADER)?;
            self.header_written = true;
        }
        Ok(())
    }

    fn emit(&mut self, bytes: &[u8], crc: &crc32fast::Hasher) -> io::Result<()> {
        self.header()?;
        self.out.write_all(bytes)?;
        self.crc.combine(crc);
        Ok(())
    }

    fn dispatch(&mut self) -> io::Result<()> {
        let next = self.spare_buffer();
        let data = std::mem::replace(&mut self.block, next);
        let dict = std::mem::replace(
            &mut self.dict,
            data[data.len().saturating_sub(WINDOW)..].to_vec(),
        );
        let out = self.spare_buffer();
        let threads = self.threads;
        let pool = self.pool.get_or_insert_with(|| Pool::new(threads));
        let (reply, result) = mpsc::sync_channel(1);
        let job = Job {
            dict,
            data,
            out,
            level: self.level,
            reply,
        };
        pool.jobs
            .as_ref()
            .expect("jobs sender lives as long as the pool")
            .send(job)
            .map_err(|_| io::Error::other("gzip workers are gone"))?;
        self.inflight.push_back(result);
        // Enough queued to keep every worker busy while the oldest is written out.
        while self.inflight.len() > 2 * self.threads {
            self.drain_one()?;
        }
        Ok(())
    }

    fn drain_one(&mut self) -> io::Result<()> {
        let Some(rx) = self.inflight.pop_front() else {
            return Ok(());
        };
        let (result, data) = rx
            .recv()
            .map_err(|_| io::Error::other("a gzip worker stopped"))?;
        let (bytes, crc) = result?;
        self.emit(&bytes, &crc)?;
        // As many as can be in flight; more would only hold memory.
        if self.spare.len() < 2 * self.threads + 2 {
            self.spare.push(data);
            self.spare.push(bytes);
        }
        Ok(())
    }

    fn spare_buffer(&mut self) -> Vec<u8> {
        let mut b = self.spare.pop().unwrap_or_default();
        b.clear();
        // Exactly what either use needs (a block, or a block's output): a
        // doubling `reserve` made every buffer 2 MiB.
        b.reserve_exact(out_capacity(BLOCK));
        b
    }
}

impl<W: Write> Write for GzipWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = (BLOCK - self.block.len()).min(buf.len());
        self.block.extend_from_slice(&buf[..n]);
        self.size += n as u64;
        if self.block.len() == BLOCK {
            self.dispatch()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// One block: deflate fragments and stored blocks, ending byte aligned; and its CRC.
fn compress_block(dict: &[u8], data: &[u8], level: u32) -> BlockResult {
    compress_block_into(dict, data, level, Vec::new())
}

/// [`compress_block`] into `out`'s allocation.
fn compress_block_into(dict: &[u8], data: &[u8], level: u32, mut out: Vec<u8>) -> BlockResult {
    let mut crc = crc32fast::Hasher::new();
    crc.update(data);
    out.reserve_exact(out_capacity(data.len()));
    let mut start = 0;
    while start < data.len() {
        let stored = incompressible(&data[start..(start + PIECE).min(data.len())]);
        let mut end = (start + PIECE).min(data.len());
        while end < data.len()
            && incompressible(&data[end..(end + PIECE).min(data.len())]) == stored
        {
            end = (end + PIECE).min(data.len());
        }
        if stored {
            write_stored(&mut out, &data[start..end]);
        } else {
            deflate(
                &mut out,
                &window_before(dict, data, start),
                &data[start..end],
                level,
            )?;
        }
        start = end;
    }
    if data.is_empty() {
        // A sync flush of nothing: keeps every block non-empty and the code simple.
        deflate(&mut out, &[], &[], level)?;
    }
    Ok((out, crc))
}

/// Room for the compressed form of `len` bytes: stored blocks add 5 bytes per
/// 64 KiB, and deflate's worst case is about as small.
fn out_capacity(len: usize) -> usize {
    len + len / 64 + 64
}

/// The up to 32 KiB of input just before `data[start]`, reaching into `dict`.
fn window_before(dict: &[u8], data: &[u8], start: usize) -> Vec<u8> {
    if start >= WINDOW {
        return data[start - WINDOW..start].to_vec();
    }
    let from_dict = (WINDOW - start).min(dict.len());
    let mut w = Vec::with_capacity(from_dict + start);
    w.extend_from_slice(&dict[dict.len() - from_dict..]);
    w.extend_from_slice(&data[..start]);
    w
}

fn deflate(out: &mut Vec<u8>, dict: &[u8], input: &[u8], level: u32) -> io::Result<()> {
    let mut c = Compress::new(flate2::Compression::new(level), false);
    if !dict.is_empty() {
        c.set_dictionary(dict).map_err(io::Error::other)?;
    }
    loop {
        // deflateBound for raw deflate, plus the sync flush's empty stored block.
        let left = input.len() - c.total_in() as usize;
        out.reserve_exact(left + (left >> 12) + (left >> 14) + (left >> 25) + 64);
        let status = c
            .compress_vec(&input[c.total_in() as usize..], out, FlushCompress::Sync)
            .map_err(io::Error::other)?;
        if status == Status::StreamEnd {
            return Err(io::Error::other(
                "deflate ended a stream it was not asked to",
            ));
        }
        // Done when all input is taken and the flush did not run out of room.
        if c.total_in() as usize == input.len() && out.len() < out.capacity() {
            return Ok(());
        }
    }
}

/// Deflate stored blocks (at most 65,535 bytes each); the output is byte aligned.
fn write_stored(out: &mut Vec<u8>, data: &[u8]) {
    for chunk in data.chunks(u16::MAX as usize) {
        let len = chunk.len() as u16;
        // BFINAL=0, BTYPE=00, then padding to the byte boundary.
        out.push(0);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(chunk);
    }
}

/// Whether the byte entropy of `piece` leaves deflate nothing to gain.
fn incompressible(piece: &[u8]) -> bool {
    // Small tails are cheap to compress and entropy is meaningless on them.
    if piece.len() < 4096 {
        return false;
    }
    // Four tables so consecutive bytes do not serialize on one counter.
    let mut counts = [[0u32; 256]; 4];
    let mut quads = piece.chunks_exact(4);
    for q in &mut quads {
        counts[0][q[0] as usize] += 1;
        counts[1][q[1] as usize] += 1;
        counts[2][q[2] as usize] += 1;
        counts[3][q[3] as usize] += 1;
    }
    for &b in quads.remainder() {
        counts[0][b as usize] += 1;
    }
    let n = piece.len() as f64;
    let mut bits = 0.0;
    for (((a, b), c), d) in counts[0]
        .iter()
        .zip(&counts[1])
        .zip(&counts[2])
        .zip(&counts[3])
    {
        let c = a + b + c + d;
        if c > 0 {
            let p = f64::from(c) / n;
            bits -= p * p.log2();
        }
    }
    bits >= STORE_ENTROPY
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    fn gunzip(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(bytes)
            .read_to_end(&mut out)
            .expect("a valid gzip stream");
        out
    }

    fn gzip(data: &[u8], threads: usize) -> Vec<u8> {
        let mut w = GzipWriter::with_threads(Vec::new(), 6, threads);
        // Odd write sizes cross block boundaries at every offset.
        for chunk in data.chunks(77_777) {
            w.write_all(chunk).unwrap();
        }
        w.finish().unwrap()
    }

    /// Deterministic pseudo-random bytes (xorshift), incompressible.
    fn noise(len: usize, mut seed: u64) -> Vec<u8> {
        (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect()
    }

    fn text(len: usize) -> Vec<u8> {
        (0..)
            .flat_map(|i: u32| format!("line {i}: the quick brown fox\n").into_bytes())
            .take(len)
            .collect()
    }

    #[test]
    fn round_trips_empty_small_and_multi_block_input() {
        for data in [
            Vec::new(),
            b"hello".to_vec(),
            text(BLOCK * 3 + 12_345),
            noise(BLOCK * 2 + 1, 7),
        ] {
            assert_eq!(gunzip(&gzip(&data, 2)), data, "len {}", data.len());
        }
    }

    #[test]
    fn mixed_content_round_trips_and_text_still_compresses() {
        let mut data = text(300_000);
        data.extend(noise(700_000, 3));
        data.extend(text(1_500_000));
        data.extend(noise(BLOCK, 9));
        let gz = gzip(&data, 3);
        assert_eq!(gunzip(&gz), data);
        // The noise costs its size; the text shrinks to a small fraction.
        let noise_len = 700_000 + BLOCK;
        assert!(
            gz.len() < noise_len + noise_len / 100 + 200_000,
            "{} bytes",
            gz.len()
        );
    }

    #[test]
    fn bytes_do_not_depend_on_the_thread_count() {
        let mut data = text(BLOCK * 2);
        data.extend(noise(BLOCK + 5, 1));
        let one = gzip(&data, 1);
        assert_eq!(one, gzip(&data, 2));
        assert_eq!(one, gzip(&data, 7));
    }

    #[test]
    fn random_data_is_stored_and_text_is_not() {
        assert!(incompressible(&noise(PIECE, 5)));
        assert!(!incompressible(&text(PIECE)));
        assert!(!incompressible(&vec![0u8; PIECE]));
        let gz = gzip(&noise(BLOCK, 11), 1);
        // Stored: 5 bytes per 64 KiB plus the gzip framing, nothing more.
        assert!(
            gz.len() <= BLOCK + BLOCK / 65_535 * 5 + 64,
            "{} bytes",
            gz.len()
        );
    }

    #[test]
    fn trailer_has_crc_and_size_of_the_input() {
        let data = text(BLOCK + 100);
        let gz = gzip(&data, 2);
        let n = gz.len();
        let mut crc = crc32fast::Hasher::new();
        crc.update(&data);
        assert_eq!(gz[n - 8..n - 4], crc.finalize().to_le_bytes());
        assert_eq!(gz[n - 4..], (data.len() as u32).to_le_bytes());
        assert_eq!(gz[..10], HEADER);
    }
}

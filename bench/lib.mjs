// What both benchmarks share: the clicking microphones, and finding flashes and clicks in a file.
import { spawn, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { loadPipeSource, run } from '../test/helpers.mjs'

export const RATE = 48000

export /**
 * The live microphone: noise at −60 dBFS and a 2 ms click for every whole epoch second, at its start
 * unless `clickAt(second)` (settable) names another moment near it, e.g. a camera's flash.
 */
function startClickStream(env, sink) {
  const player = spawn(
    'pacat',
    ['--raw', '--playback', `--device=${sink}`, '--rate=48000', '--channels=1', '--format=s16le', '--latency-msec=20'],
    { env, stdio: ['pipe', 'ignore', 'inherit'] },
  )
  let stopping = false
  player.stdin.on('error', (error) => {
    if (!stopping) console.error('the click player stopped:', error.message)
  })
  let writtenUntilS = Date.now() / 1000
  const timer = setInterval(() => {
    // Keep 0.3 s queued for the player: the bench's own pauses (a synchronous ffprobe, a WAV read)
    // would otherwise starve it, and PulseAudio fills a starved stream with silence, which moves
    // every later click by that much.
    const nowS = Date.now() / 1000 + 0.3
    const count = Math.floor((nowS - writtenUntilS) * RATE)
    if (count <= 0) return
    const samples = new Int16Array(count)
    for (let i = 0; i < count; i++) {
      const t = writtenUntilS + i / RATE
      // a click moved by clickAt may fall in the second before or after its own
      const clicking = [-1, 0, 1].some((d) => {
        const clickS = stream.clickAt(Math.floor(t) + d)
        const intoClick = t - clickS
        if (intoClick >= 0 && intoClick < 1 / RATE) stream.played.push(clickS)
        return intoClick >= 0 && intoClick < 0.002
      })
      samples[i] = clicking ? (i % 2 ? 24000 : -24000) : Math.round((Math.random() - 0.5) * 64)
    }
    writtenUntilS += count / RATE
    player.stdin.write(Buffer.from(samples.buffer))
  }, 10)
  const stream = {
    env,
    sink,
    clickAt: (second) => second,
    played: [], // when each click was written to the player, epoch seconds
    stop() {
      stopping = true
      clearInterval(timer)
      player.stdin.end()
      player.kill('SIGTERM')
    },
  }
  return stream
}

export /** Presentation times of the white frames in a file, as the file states them (any frame size). */
function whiteFramePts(file) {
  const probe = run(
    'ffprobe',
    ['-v', 'error', '-select_streams', 'v:0', '-show_entries', 'frame=pts_time', '-of', 'csv=p=0', file],
    { maxBuffer: 1 << 26 },
  )
  const pts = probe.stdout.trim().split('\n').map(Number)
  const raw = spawnSync(
    'ffmpeg',
    ['-v', 'error', '-i', file, '-map', '0:v:0', '-vf', 'scale=64:48', '-f', 'rawvideo', '-pix_fmt', 'gray', '-'],
    { maxBuffer: 1 << 30 },
  ).stdout
  const frameBytes = 64 * 48
  const white = []
  for (let k = 0; k * frameBytes < raw.length; k++) {
    let sum = 0
    for (let i = k * frameBytes; i < (k + 1) * frameBytes; i++) sum += raw[i]
    if (sum / frameBytes > 128) white.push({ frame: k, ptsS: pts[k] })
  }
  return white
}

export /** Click onsets (sample indexes) in decoded audio: the first sample of each loud run. */
function clickOnsets(samples) {
  const onsets = []
  for (let i = 0; i < samples.length; i++) {
    if (Math.abs(samples[i]) > 8000) {
      onsets.push(i)
      i += RATE / 2
    }
  }
  return onsets
}

export function median(values) {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted.length ? sorted[Math.floor(sorted.length / 2)] : NaN
}

/**
 * A microphone whose capture times are known: a PulseAudio pipe source fed at the wall clock's pace
 * (× `ratio`: a card running that much fast) with quiet noise, and a 2 ms click written the moment
 * `click()` is called. A sample reaches the source when it is written (SYNC.md), so a click's write
 * time is when it was captured: the physical truth for the audio side, with no playback path between.
 * A reader of our own (parec into nothing) keeps the source running from the start, as a real
 * microphone's samples flow whether or not anyone records: a suspended pipe source stops reading its
 * FIFO, and the writes would pile up there and reach the capture late.
 */
export function startPipeMic(pulse, name, { ratio = 1 } = {}) {
  const fifo = path.join(pulse.dir, `${name}.fifo`)
  const moduleId = loadPipeSource(pulse, name, fifo)
  const drain = spawn('parec', [`--device=${name}`, '--raw', '--latency-msec=20'], {
    env: pulse.env,
    stdio: ['ignore', 'ignore', 'inherit'],
  })
  const fd = fs.openSync(fifo, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK)
  const t0S = Date.now() / 1000
  const mic = { source: name, ratio, clicks: [], droppedSamples: 0, written: 0 }
  const write = (samples) => {
    const bytes = Buffer.from(samples.buffer)
    let done = 0
    try {
      while (done < bytes.length) done += fs.writeSync(fd, bytes, done)
    } catch {
      mic.droppedSamples += (bytes.length - done) / 2 // the FIFO full: the truth is lost from here on
    }
    mic.written += samples.length
  }
  const topUp = () => {
    const due = Math.floor((Date.now() / 1000 - t0S) * RATE * ratio)
    if (due <= mic.written) return
    if (due - mic.written > RATE / 5) {
      // The writer was stalled (the bench's own synchronous work): what it missed is gone, as from a
      // microphone that dropped out, rather than written late in one burst the FIFO cannot hold.
      mic.droppedSamples += due - mic.written
      mic.written = due
      return
    }
    const samples = new Int16Array(due - mic.written)
    for (let i = 0; i < samples.length; i++) samples[i] = Math.round((Math.random() - 0.5) * 64)
    write(samples)
  }
  const timer = setInterval(topUp, 5)
  return Object.assign(mic, {
    /** A click now: its first sample is written (captured) at the returned epoch time. */
    click() {
      topUp()
      const wallS = Date.now() / 1000
      mic.clicks.push({ sample: mic.written, wallS })
      write(Int16Array.from({ length: RATE / 500 }, (_, i) => (i % 2 ? 24000 : -24000)))
      return wallS
    },
    stop() {
      clearInterval(timer)
      fs.closeSync(fd)
      drain.kill('SIGTERM')
      spawnSync('pactl', ['unload-module', moduleId], { env: pulse.env })
    },
  })
}

/**
 * Which of `truths` each of `found` is, by pattern: the shift (truth − found) most of them agree on
 * within `toleranceS`, over every candidate, never the nearest one. An irregular train has one such
 * shift; a regular one would not, which is why the bench's flashes fall on a pseudo-random half of the
 * seconds. Returns [found index, truth index] pairs at that shift.
 */
export function matchByPattern(found, truths, toleranceS) {
  let best = { shift: 0, count: 0 }
  for (const t of truths)
    for (const f of found) {
      const shift = t - f
      const count = found.filter((g) => truths.some((u) => Math.abs(u - g - shift) <= toleranceS)).length
      if (count > best.count) best = { shift, count }
    }
  const pairs = []
  for (const [i, f] of found.entries()) {
    const j = truths.findIndex((u) => Math.abs(u - f - best.shift) <= toleranceS)
    if (j >= 0) pairs.push([i, j])
  }
  return pairs
}

/** Whether a flash (and its click) goes with the epoch second `second`: a fixed pseudo-random half. */
export function flashSecond(second) {
  let h = (second * 2654435761) >>> 0
  h = Math.imul(h ^ (h >>> 15), 2246822507) >>> 0
  h = Math.imul(h ^ (h >>> 13), 3266489909) >>> 0
  return ((h ^ (h >>> 16)) >>> 0) % 2 === 0
}

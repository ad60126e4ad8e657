// npm run bench, part 2: the real TracktorLive (../shared/tracktorlive, TRACKTORLIVE_SRC, or an
// installed one; GPL-3, run beside, never shipped) tracking a live 30 fps camera stream (MPEG-TS over
// UDP on this machine) through its Python API, with -d -w, while record-audio records a microphone.
// Both sides of the truth are physical:
// - the camera sends a white frame at the first frame of a pseudo-random half of the seconds (an
//   irregular train, as a lab's LED train should be) and notes when it sent it;
// - at that same moment it writes a click into the microphone: a PulseAudio pipe source whose
//   samples are captured when they are written (bench/lib.mjs startPipeMic), so the click and the
//   flash are one physical event, with no playback latency between them.
// A flash's error is how far its click lies from its white frame in the muxed file (+: the sound
// comes late). Which white frame and which click are a flash's is found by the train's pattern
// (frame numbers, write times), never by proximity and never from the tool's own clocks or files.
// Each anchor's command is made from the same recording: the tracking CSV's frame clock (the
// default); --events on it, and on anchors put 1.3 s off; the CSV with --camera-latency measured on
// an earlier session; a timesync file; and the ULID + mtime alone (the CSV moved away).
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import {
  ROOT,
  decodeAudio,
  run,
  startPulse,
  startTool,
  tempDir,
  tracktorliveEnv,
  rawFrameWriter,
} from '../test/helpers.mjs'
import { RATE, clickOnsets, flashSecond, matchByPattern, median, startPipeMic, whiteFramePts } from './lib.mjs'

const quick = process.argv.includes('--quick')
const TOOL = path.join(ROOT, 'dist', 'record-audio.mjs')
const SIZE = [320, 240]
const ANCHORS_OFF_S = 1.3

/**
 * The camera: raw frames at the wall clock's pace into ffmpeg, out as MPEG-TS over UDP. The first
 * frame of each flash second is white, and every microphone clicks the moment it is sent.
 */
function startCamera(port, mics) {
  const encoder = rawFrameWriter(SIZE.join('x'), 30, [
    ...['-c:v', 'mpeg2video', '-q:v', '4', '-g', '15', '-f', 'mpegts', '-flush_packets', '1'],
    `udp://127.0.0.1:${port}?pkt_size=1316`,
  ])
  const flashes = [] // { frame: the camera's frame number, sentS: epoch seconds, clicks: one per microphone }
  let stopped = false
  const startS = Date.now() / 1000
  const dueS = (k) => startS + k / 30
  const done = (async () => {
    for (let k = 0; !stopped; k++) {
      const waitMs = (dueS(k) - Date.now() / 1000) * 1000
      if (waitMs > 0) await sleep(waitMs)
      const second = Math.floor(dueS(k))
      const white = k > 0 && second !== Math.floor(dueS(k - 1)) && flashSecond(second)
      encoder.stdin.write(Buffer.alloc(SIZE[0] * SIZE[1], white ? 255 : 16))
      if (white) {
        const sentS = Date.now() / 1000
        flashes.push({ frame: k, sentS, clicks: mics.map((mic) => mic.clicks.length) })
        for (const mic of mics) mic.click()
      }
    }
    encoder.stdin.end()
    await new Promise((resolve) => encoder.once('exit', resolve))
  })()
  return {
    flashes,
    async stop() {
      stopped = true
      await done
    },
  }
}

/**
 * The physical error at each flash in a muxed file: the muxed click of that flash's written click
 * minus the muxed white frame of that flash. The white frames are the camera's by frame number (the
 * shift most of them agree on); the clicks are the microphone's by their write times' pattern.
 */
function score(muxedFile, flashes, mic, stream = 0) {
  const white = whiteFramePts(muxedFile)
  const byCameraFrame = new Map()
  const shifts = matchByPattern(
    white.map((w) => w.frame),
    flashes.map((f) => f.frame),
    0,
  )
  for (const [i, j] of shifts) byCameraFrame.set(flashes[j].frame, white[i].ptsS)
  const heardS = clickOnsets(decodeAudio(muxedFile, RATE, stream)).map((i) => i / RATE)
  const writtenS = mic.clicks.map((c) => c.wallS)
  const clickOf = new Map(matchByPattern(heardS, writtenS, 0.15).map(([i, j]) => [j, heardS[i]]))
  const micIndex = mic.index ?? 0
  const errorsMs = []
  for (const f of flashes) {
    const whiteS = byCameraFrame.get(f.frame)
    const clickS = clickOf.get(f.clicks[micIndex])
    if (whiteS !== undefined && clickS !== undefined) errorsMs.push((clickS - whiteS) * 1000)
  }
  if (!errorsMs.length) return { pairs: 0, errorsMs }
  return {
    errorsMs,
    pairs: errorsMs.length,
    firstMs: errorsMs[0],
    medianMs: median(errorsMs),
    spreadMs: Math.max(...errorsMs) - Math.min(...errorsMs),
    worstMs: errorsMs.reduce((a, b) => (Math.abs(b) > Math.abs(a) ? b : a)),
    driftMs: errorsMs.at(-1) - errorsMs[0],
  }
}

/**
 * When the WAV's first sample was captured, from the microphone's own write times: each click's
 * write time less its index in the WAV on the microphone's clock (the median over the clicks).
 */
function trueAudioStartS(wavFile, mic) {
  const inWav = clickOnsets(decodeAudio(wavFile))
  const written = mic.clicks.map((c) => c.wallS)
  const starts = matchByPattern(
    inWav.map((i) => i / (RATE * mic.ratio)),
    written,
    0.15,
  ).map(([i, j]) => written[j] - inWav[i] / (RATE * mic.ratio))
  return starts.length ? median(starts) : Number.NaN
}

/** record-audio mux on the recording's sync file, with flags; the muxed file and the record it used. */
function muxWith(cwd, syncFile, name, flags) {
  const muxed = path.join(cwd, `${name}.mp4`)
  const out = run(process.execPath, [TOOL, 'mux', syncFile, '--json', '--muxed-out', muxed, ...flags], { cwd })
  if (out.status !== 0) throw new Error(`mux (${name}): ${out.stderr}`)
  return { muxed, sync: JSON.parse(out.stdout), stderr: out.stderr }
}

/** record-audio check on a file: the median of its flash-to-click residuals at its own verdict, ms. */
function checkMs(file) {
  const out = run(process.execPath, [TOOL, 'check', file, '--json'])
  const fit = out.stdout ? JSON.parse(out.stdout) : null
  return fit?.consistent && fit.medianS != null ? fit.medianS * 1000 : Number.NaN
}

/**
 * Whether the true offset lies inside the record's offsetBoundsS. A flash's error e (ms, + late) says the
 * offset that would have put it in sync: offsetS − e; inside when low ≤ offsetS − e ≤ high. The median's
 * verdict, the share of flashes inside, and the bounds' width; null when the record has no bounds (a second
 * device's stream: the bounds are the first device's offset's).
 */
function coverage(sync, errorsMs, stream) {
  const bounds = stream ? null : sync.offsetBoundsS
  if (!bounds || sync.offsetS == null || !errorsMs.length) return null
  const [lowS, highS] = bounds
  const inside = (eMs) => lowS <= sync.offsetS - eMs / 1000 && sync.offsetS - eMs / 1000 <= highS
  return {
    medianInside: inside(median(errorsMs)),
    flashesInside: errorsMs.filter(inside).length,
    widthMs: (highS - lowS) * 1000,
    // the errors the bounds allow: from −(high − offset) to +(offset − low)
    errorLowMs: -(highS - sync.offsetS) * 1000,
    errorHighMs: (sync.offsetS - lowS) * 1000,
  }
}

/** A row: the anchor's name, the record it muxed with, check's figure, the physical score and the bounds. */
function row(anchor, muxedFile, sync, flashes, mic, stream = 0) {
  const scored = score(muxedFile, flashes, mic, stream)
  const checked = stream ? Number.NaN : checkMs(muxedFile)
  return { anchor, sync, checkMs: checked, ...scored, bounds: coverage(sync, scored.errorsMs, stream) }
}

/** The first of base.wav, base-2.wav, … not yet in the folder: the WAV record-audio will write there. */
function freeWav(cwd, base) {
  for (let k = 1; ; k++) {
    const name = `${base}${k === 1 ? '' : `-${k}`}.wav`
    if (!fs.existsSync(path.join(cwd, name))) return name
  }
}

/** The camera streaming, and record-audio recording the microphones with `args` in the data folder `cwd`. */
async function startSession(pulse, mics, args, cwd = tempDir('ra-bench-trl-')) {
  const port = 5077 + Math.floor(Math.random() * 500)
  const camera = startCamera(port, mics)
  await sleep(1000)
  const devices = mics.flatMap((m) => ['--device', m.source])
  const tool = startTool(['fish', '--format', 'pulse', ...devices, ...args], { cwd, env: pulse.env })
  const wavs = mics.length === 1 ? [freeWav(cwd, 'fish-audio')] : mics.map((_, k) => `fish-audio-${k + 1}.wav`)
  for (const wav of wavs) await tool.recording(path.join(cwd, wav), 20000)
  for (const mic of mics) mic.droppedSamples = 0 // the bench's own synchronous work between sessions stalls it
  await sleep(2000)
  /** ctrl-c, and what the recording left: its sync file and record, its stderr. */
  const stop = async () => {
    tool.ctrlC()
    const result = await tool.exited
    await camera.stop()
    const dropped = mics.reduce((sum, mic) => sum + mic.droppedSamples, 0)
    if (dropped) console.log(`⚠ ${dropped} samples not written into a microphone during a session: its truth is off`)
    if (result.code !== 0) throw new Error(`record-audio exited ${result.code}: ${result.stderr}`)
    const syncFile = path.join(
      cwd,
      mics.length === 1 ? wavs[0].replace(/\.wav$/, '-sync.json') : 'fish-audio-sync.json',
    )
    return { syncFile, sync: JSON.parse(fs.readFileSync(syncFile, 'utf8')), stderr: result.stderr }
  }
  return { cwd, port, camera, stop }
}

/** One TracktorLive run of `seconds` on the camera's stream, writing fish/<ULID>.mp4 and .csv; its exit. */
async function runTracktor(cwd, port, seconds) {
  const tracktor = spawn(
    '/usr/bin/python3',
    [path.join(ROOT, 'bench', 'tracktorlive_run.py'), `udp://127.0.0.1:${port}`, 'fish', String(seconds)],
    {
      cwd,
      env: tracktorliveEnv({
        ...process.env,
        HOME: tempDir('ra-bench-home-'),
        TRACKTORLIVE_T_INIT_FILE: path.join(cwd, 't_init'),
      }),
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  )
  let trackerLog = ''
  tracktor.stderr.on('data', (d) => {
    trackerLog = (trackerLog + d).slice(-4000)
  })
  const code = await new Promise((resolve) => tracktor.once('exit', resolve))
  return { code, log: trackerLog }
}

/**
 * TracktorLive's timesync cassette needs pandas and pyarrow (not in Debian's python3 here): its file
 * is written as the cassette would (TRACKTORLIVE.md), one row per frame but the last, t_init + the
 * frame's read time.
 */
async function writeTimesync(cwd, csv) {
  const { parseTrackingTimes } = await import('../dist/record-audio.mjs')
  const { parquetWriteFile } = await import('hyparquet-writer')
  const file = path.join(cwd, 'fish-timesyncUTC.parquet')
  const tInitS = Number(fs.readFileSync(path.join(cwd, 't_init'), 'utf8'))
  const data = parseTrackingTimes(fs.readFileSync(csv, 'utf8'))
    .slice(0, -1)
    .map((t) => tInitS + t)
  parquetWriteFile({ filename: file, columnData: [{ name: 'timestampUTC', data, type: 'DOUBLE' }] })
  return file
}

/** The first sample: the device's stamp and the time used, each against the microphone's truth, ms. */
function firstSample(sync, mic, part = sync) {
  const truthS = trueAudioStartS(part.audioFile, mic)
  const stampS = part.audioStartStampEpochS ?? part.audioStartEpochS
  return { stampMs: (stampS - truthS) * 1000, usedMs: (part.audioStartEpochS - truthS) * 1000 }
}

/** The camera's entry in the data folder's record-audio-calibration.json (the tracking CSV's anchor), or null. */
function keptCamera(cwd) {
  const file = path.join(cwd, 'record-audio-calibration.json')
  if (!fs.existsSync(file)) return null
  const cameras = JSON.parse(fs.readFileSync(file, 'utf8')).cameras ?? []
  return cameras.find((c) => c.feedId === 'fish' && c.anchor === 'tracking-csv') ?? null
}

/** What the tool said at the stop of the video's offset and of the camera's latency: its own lines. */
function saidOfLatency(stderr) {
  return stderr.split('\n').filter((line) => /Camera latency|audio starts|⚠ Events/.test(line))
}

/** The recording's own command (made at the stop) run and scored: the row a user gets without a mux later. */
function stopRow(label, sync, flashes, mic) {
  const mux = run('bash', ['-c', sync.muxCommand])
  if (mux.status !== 0) throw new Error(`mux: ${mux.stderr}`)
  return row(label, sync.muxedFile, sync, flashes, mic)
}

/** One TracktorLive run inside a record-audio session in the data folder `cwd`, stopped after it. */
async function recordSession(pulse, mic, seconds, cwd, args) {
  const { port, camera, stop } = await startSession(pulse, [mic], args, cwd)
  const { code, log: trackerLog } = await runTracktor(cwd, port, seconds)
  await sleep(1000)
  const stopped = await stop()
  if (!stopped.sync.muxCommand)
    throw new Error(`no video (TracktorLive exited ${code}): ${trackerLog}\n${stopped.stderr}`)
  return { ...stopped, flashes: camera.flashes }
}

/**
 * The first session in a data folder, recorded with --events at the stop: the tool measures the camera's
 * latency and keeps it in ./record-audio-calibration.json. The bench's own figure for it: how late the
 * tracking CSV's anchor alone puts the video (−the physical error of that session with --no-calibration).
 */
async function calibratingSession(pulse, mic, seconds, cwd) {
  const { syncFile, sync, stderr, flashes: f } = await recordSession(pulse, mic, seconds, cwd, ['--events'])
  const kept = keptCamera(cwd)
  const rows = [stopRow(`1st: --events at the stop (${sync.events?.used ?? 0} pairs; kept)`, sync, f, mic)]
  const bare = muxWith(cwd, syncFile, '1st-no-calibration', ['--no-events', '--no-calibration'])
  rows.push(row('1st: tracking CSV, --no-calibration', bare.muxed, bare.sync, f, mic))
  const latencyS = -rows[1].medianMs / 1000
  return { rows, sync, stderr, seconds, kept, truthLatencyS: latencyS, said: saidOfLatency(stderr) }
}

/**
 * A later session in the same data folder (same feed, pipe source and camera mode) with no latency flag:
 * the kept calibration is applied at the stop. Beside it, from the same recording: --no-calibration (the
 * default CSV anchor, unmeasured), --camera-latency measured by the bench on the first session, --events
 * (and on anchors put 1.3 s off), a timesync file, and the ULID + mtime alone.
 */
async function laterSession(pulse, mic, seconds, cwd, latencyS) {
  const { syncFile, sync, stderr, flashes: f } = await recordSession(pulse, mic, seconds, cwd, [])
  const rows = [stopRow(`2nd: at the stop, no flag (latency: ${sync.cameraLatencySource})`, sync, f, mic)]
  const bare = muxWith(cwd, syncFile, '2nd-no-calibration', ['--no-calibration'])
  rows.push(
    row(
      `2nd: tracking CSV (${sync.trackingCsvEpochSource ?? 'none'}), --no-calibration`,
      bare.muxed,
      bare.sync,
      f,
      mic,
    ),
  )
  if (latencyS != null) {
    const flag = `--camera-latency=${latencyS.toFixed(3)}`
    const withLatency = muxWith(cwd, syncFile, '2nd-latency', [flag])
    rows.push(
      row(`2nd: tracking CSV + ${flag} (the bench's, 1st session)`, withLatency.muxed, withLatency.sync, f, mic),
    )
  }
  const events = muxWith(cwd, syncFile, '2nd-events', ['--events'])
  rows.push(row(`2nd: --events (${events.sync.events?.used ?? 0} pairs)`, events.muxed, events.sync, f, mic))
  const off = muxWith(cwd, syncFile, '2nd-events-off', ['--events', `--clock-offset=${ANCHORS_OFF_S}`])
  const offLabel = `2nd: --events, anchors ${ANCHORS_OFF_S} s off (${off.sync.events?.used ?? 0} pairs)`
  rows.push(row(offLabel, off.muxed, off.sync, f, mic))
  // That verdict is kept too (the anchors' lateness under the wrong offset): what a later mux applies then.
  const polluted = muxWith(cwd, syncFile, '2nd-after-off', [])
  const pollutedLabel = `2nd: mux later, no flag, once that row was kept (${polluted.sync.cameraLatencySource})`
  rows.push(row(pollutedLabel, polluted.muxed, polluted.sync, f, mic))
  const csv = sync.trackingCsvFile
  const timesyncFile = csv ? await writeTimesync(cwd, csv) : null
  if (csv) fs.renameSync(csv, `${csv}.away`)
  try {
    if (timesyncFile) {
      const timesync = muxWith(cwd, syncFile, '2nd-timesync', ['--timesync', timesyncFile])
      rows.push(
        row(`2nd: timesync file (no CSV; ${timesync.sync.videoStartSource})`, timesync.muxed, timesync.sync, f, mic),
      )
      fs.renameSync(timesyncFile, `${timesyncFile}.away`) // the rows below: no timesync either
    }
    const ulidOnly = muxWith(cwd, syncFile, '2nd-ulid', [])
    rows.push(row('2nd: ULID + mtime (no CSV)', ulidOnly.muxed, ulidOnly.sync, f, mic))
    const nominal = muxWith(cwd, syncFile, '2nd-ulid-nominal', ['--no-drift-fix'])
    rows.push(row('2nd: ULID alone (no CSV, --no-drift-fix)', nominal.muxed, nominal.sync, f, mic))
  } finally {
    if (csv) fs.renameSync(`${csv}.away`, csv)
  }
  const keptAfter = keptCamera(cwd)
  return { rows, sync, stderr, seconds, firstSample: firstSample(sync, mic), keptAfter, said: saidOfLatency(stderr) }
}

/**
 * One microphone across three trials: TracktorLive started and stopped three times inside one
 * recording, record-audio --all-videos; each trial's command run and scored like the single case.
 */
async function trialsSession(pulse, mic, trialS) {
  const { cwd, port, camera, stop } = await startSession(pulse, [mic], ['--all-videos'])
  const startedMs = Date.now()
  for (let trial = 0; trial < 3; trial++) {
    const { code, log } = await runTracktor(cwd, port, trialS)
    if (code !== 0) throw new Error(`TracktorLive (trial ${trial + 1}) exited ${code}: ${log}`)
    await sleep(3000)
  }
  const { sync, stderr } = await stop()
  if (process.argv.includes('--stops'))
    console.log(`${stderr.trimEnd()}\n${sync.videos.map((video) => video.muxCommand).join('\n')}\n`)
  const rows = sync.videos.map((video, i) => {
    const mux = run('bash', ['-c', video.muxCommand])
    if (mux.status !== 0) throw new Error(`mux (trial ${i + 1}): ${mux.stderr}`)
    const anchor = `--all-videos, trial ${i + 1} of ${sync.videos.length} (${video.videoStartSource})`
    return row(anchor, video.muxedFile, { ...sync, ...video }, camera.flashes, mic)
  })
  return { rows, recordingS: sync.audioDurationS, wallS: (Date.now() - startedMs) / 1000 }
}

/**
 * Two microphones, the second a card running 1000 ppm fast, in one recording: one muxed file with an
 * audio stream each, each stream scored against its own clicks.
 */
async function devicesSession(pulse, mics, seconds) {
  const { cwd, port, camera, stop } = await startSession(pulse, mics, [])
  const { code, log } = await runTracktor(cwd, port, seconds)
  if (code !== 0) throw new Error(`TracktorLive exited ${code}: ${log}`)
  await sleep(1000)
  const { sync } = await stop()
  const mux = run('bash', ['-c', sync.muxCommand])
  if (mux.status !== 0) throw new Error(`mux: ${mux.stderr}`)
  return sync.audios.map((part, k) => ({
    ...row(
      `2 devices, stream ${k + 1}: ${part.audioDevice} at ${Math.round((mics[k].ratio - 1) * 1e6)} ppm (tracking CSV)`,
      sync.muxedFile,
      { ...sync, ...part },
      camera.flashes,
      mics[k],
      k,
    ),
    firstSample: firstSample(sync, mics[k], part),
  }))
}

const fmt = (x, digits = 1) => (Number.isFinite(x) ? x.toFixed(digits) : '—')

const pulse = await startPulse({ tone: false })
const mic = Object.assign(startPipeMic(pulse, 'ra_mic'), { index: 0 })
const fastMic = Object.assign(startPipeMic(pulse, 'ra_fast_mic', { ratio: 1.001 }), { index: 1 })
await sleep(1000)
let first
let run1
let trials
let devices
try {
  // One data folder for the first two sessions: what the first keeps, the second applies by itself.
  const dataDir = tempDir('ra-bench-trl-data-')
  first = await calibratingSession(pulse, mic, quick ? 20 : 30, dataDir)
  const latencyS = Number.isFinite(first.truthLatencyS) && first.truthLatencyS > 0 ? first.truthLatencyS : null
  run1 = await laterSession(pulse, mic, quick ? 20 : 60, dataDir, latencyS)
  // --stops: what each of the two sessions printed at ctrl-c, whole (the README's example is one of them).
  // Then the command (stdout) and the reasoning --verbose gives (the sync file's notes).
  if (process.argv.includes('--stops'))
    for (const { stderr, sync } of [first, run1])
      console.log(
        `${stderr.trimEnd()}\n${sync.muxCommand ?? ''}\n--verbose:\n${(sync.notes ?? []).map((n) => n.text).join('\n')}\n`,
      )
  trials = await trialsSession(pulse, mic, quick ? 12 : 22)
  devices = await devicesSession(pulse, [mic, fastMic], quick ? 20 : 60)
} finally {
  mic.stop()
  fastMic.stop()
  await pulse.stop()
}
const s = run1.sync
console.log(
  `\nThe real TracktorLive, ${run1.seconds} s of a live 30 fps stream: camera ${fmt(s.cameraFps, 4)} fps by the frame clock,` +
    ` ${s.bufferedFrames} buffered frames at the start, frame 0 read ${fmt((s.firstReadLateS ?? Number.NaN) * 1000, 0)} ms after it was sent\n`,
)
console.log('Physical sync error of the muxed file, ms (flash sent vs click captured; + means the sound comes late)\n')
console.log(
  '| anchor | pairs | first flash | median | spread (max − min) | worst | last − first | itsscale | check: median |' +
    ' check − bench | latency | truth inside bounds | flashes inside | bounds (error allowed) | width |',
)
console.log('|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|')
const latencyOf = (x) =>
  x.cameraLatencySource == null
    ? '—'
    : `${x.cameraLatencySource} ${fmt((x.cameraLatencyS ?? 0) * 1000)}${x.cameraLatencyUncertaintyS == null ? '' : ` ± ${fmt(x.cameraLatencyUncertaintyS * 1000)}`}`
const boundsOf = (b, pairs) =>
  b
    ? `| ${b.medianInside ? 'yes' : 'no'} | ${b.flashesInside}/${pairs} | ${fmt(b.errorLowMs)} … +${fmt(b.errorHighMs)} | ${fmt(b.widthMs)} |`
    : '| — | — | — | — |'
for (const r of [...first.rows, ...run1.rows, ...trials.rows, ...devices])
  console.log(
    `| ${r.anchor} | ${r.pairs} | ${fmt(r.firstMs)} | ${fmt(r.medianMs)} | ${fmt(r.spreadMs)} | ${fmt(r.worstMs)} | ${fmt(r.driftMs)} | ${r.sync.itsscale ? r.sync.itsscale.toFixed(6) : '—'} | ${fmt(r.checkMs)} | ${fmt(r.checkMs - r.medianMs)} | ${latencyOf(r.sync)} ${boundsOf(r.bounds, r.pairs)}`,
  )
console.log(
  "\nlatency: the camera latency the row's record took off (cameraLatencySource, ms ± its uncertainty). truth" +
    ' inside bounds: whether the true offset at the median flash (the offset less its physical error) lies in the' +
    " record's offsetBoundsS; flashes inside: how many flashes' true offsets do; bounds (error allowed): the same" +
    ' bounds as the errors they allow, ms; width: high − low, ms. A second device has no bounds of its own (—).',
)
const keptLast = first.kept?.measurements.at(-1)
const truthMs = first.truthLatencyS * 1000
console.log(
  `\nThe camera's latency, 1st session (${first.seconds} s, --events at the stop): kept in record-audio-calibration.json` +
    (keptLast
      ? ` median ${fmt(keptLast.medianS * 1000)} ms, spread ${fmt(keptLast.spreadS * 1000)} ms, ${keptLast.pairs} pairs` +
        ` (${first.kept.videoMode}, ${first.kept.audioDevice}, ${first.kept.anchor});` +
        ` the bench's physical truth ${fmt(truthMs)} ms (−the --no-calibration row's median): kept − truth` +
        ` ${fmt(keptLast.medianS * 1000 - truthMs)} ms.`
      : ' nothing (⚠ no tracking-csv entry for the feed).'),
)
const s2 = run1.sync
const calibrated = run1.rows[0]
console.log(
  `2nd session (${run1.seconds} s, same folder, no flag): cameraLatencySource ${s2.cameraLatencySource}` +
    `${s2.cameraLatencySource === 'calibration' ? '' : ' ⚠ (the kept calibration was NOT applied)'},` +
    ` ${fmt((s2.cameraLatencyS ?? Number.NaN) * 1000)} ± ${fmt((s2.cameraLatencyUncertaintyS ?? Number.NaN) * 1000)} ms;` +
    ` error ${fmt(calibrated.medianMs)} ms (median) vs ${fmt(run1.rows[1].medianMs)} ms with --no-calibration.`,
)
for (const [name, said] of [
  ['1st', first.said],
  ['2nd', run1.said],
])
  for (const line of said) console.log(`  ${name} session's stop said: ${line.trim()}`)
const keptNow = run1.keptAfter?.measurements ?? []
console.log(
  `record-audio-calibration.json after the 2nd session's mux-later rows: ${keptNow.length} measurement(s) of the` +
    ` tracking-csv camera: ${keptNow.map((m) => `${m.video ?? '?'} ${fmt(m.medianS * 1000)} ms`).join(', ') || '—'}.`,
)
console.log(
  "\ncheck − bench: the file's own flash-to-click residual (record-audio check) minus the physical error above. The" +
    ' click is written into the pipe-source microphone the moment its flash is sent, so the two are one event and' +
    ' check should agree with the bench to within its own timing (a frame is 33 ms; sub-frame timing takes it to ~1 ms).',
)
console.log("\nThe audio's first sample against the microphone's write times, ms (+: claimed later than captured)\n")
console.log('| recording | device stamp | used by the tool |')
console.log('|---|---|---|')
console.log(`| main session | ${fmt(run1.firstSample.stampMs)} | ${fmt(run1.firstSample.usedMs)} |`)
for (const [k, d] of devices.entries())
  console.log(`| 2 devices, stream ${k + 1} | ${fmt(d.firstSample.stampMs)} | ${fmt(d.firstSample.usedMs)} |`)
console.log(
  `\n--all-videos: one recording of ${fmt(trials.recordingS, 0)} s with three TracktorLive trials in it; each trial` +
    ' scored like the single case above.',
)

// npm run bench, part 2: the real TracktorLive (../shared/tracktorlive, TRACKTORLIVE_SRC, or an
// installed one; GPL-3, run beside, never shipped) tracking a live 30 fps camera stream (MPEG-TS over
// UDP on this machine) through its Python API, with -d -w, while record-audio records a microphone
// that clicks at every whole epoch second. The camera sends a white frame at the first frame of
// every whole second and records when it sent it: the physical truth. A pair's error is how far
// apart a white frame and its second's click are in the muxed file minus how far apart they truly
// were (the click's time on the capture's own clock, as in part 1): + means the sound comes late.
// Each anchor's command is made from the same recording: the tracking CSV's frame clock (the
// default); the same with --camera-latency measured on an earlier session (its CSV row's median:
// the camera's delay, measured once and reused); and the ULID + mtime alone (the CSV moved away),
// with and without the drift correction that start → mtime suggests.
import { spawn, spawnSync } from 'node:child_process'
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
import { RATE, clickOnsets, median, startClickStream, whiteFramePts } from './lib.mjs'

const quick = process.argv.includes('--quick')
const TOOL = path.join(ROOT, 'dist', 'record-audio.mjs')
const SIZE = [320, 240]

/**
 * The camera: raw frames at the wall clock's pace into ffmpeg, out as MPEG-TS over UDP. The first
 * frame of each second is white, and the microphone clicks when that frame is due: a lab's flash
 * and click at the same moment.
 */
function startCamera(port, clickStreams) {
  const encoder = rawFrameWriter(SIZE.join('x'), 30, [
    ...['-c:v', 'mpeg2video', '-q:v', '4', '-g', '15', '-f', 'mpegts', '-flush_packets', '1'],
    `udp://127.0.0.1:${port}?pkt_size=1316`,
  ])
  const flashes = [] // send times of the white frames, epoch seconds
  let stopped = false
  const startS = Date.now() / 1000
  const dueS = (k) => startS + k / 30
  const leadsS = clickStreams.map(() => 0)
  for (const [k, clicks] of clickStreams.entries())
    clicks.clickAt = (second) => dueS(Math.ceil((second - startS) * 30)) - leadsS[k]
  const done = (async () => {
    for (let k = 0; !stopped; k++) {
      const waitMs = (dueS(k) - Date.now() / 1000) * 1000
      if (waitMs > 0) await sleep(waitMs)
      const sentS = Date.now() / 1000
      const white = k > 0 && Math.floor(dueS(k)) !== Math.floor(dueS(k - 1))
      if (white) flashes.push(sentS)
      encoder.stdin.write(Buffer.alloc(SIZE[0] * SIZE[1], white ? 255 : 16))
    }
    encoder.stdin.end()
    await new Promise((resolve) => encoder.once('exit', resolve))
  })()
  return {
    flashes,
    /** From now on the k-th microphone's clicks are played this much before their flashes. */
    setClickLead(k, seconds) {
      leadsS[k] = seconds
    },
    async stop() {
      stopped = true
      await done
    },
  }
}

/**
 * Pair errors in a muxed file: each white frame with the click of the second it was sent in. Which
 * flash a white frame is comes from its frame index on the best anchor (the tracking CSV's, ~0.1 s
 * off); with that anchor's own error known, a row's error at a flash is expected to be that error
 * plus how differently the two rows place the audio (offset) and the frame (itsscale), and the
 * click nearest that is taken: clicks a second apart leave a row half a second off ambiguous
 * otherwise.
 */
function score(muxedFile, sync, flashes, wavClicks, reference = sync, referenceErrorS = 0, stream = 0) {
  const muxClicks = clickOnsets(decodeAudio(muxedFile, RATE, stream))
  const errorsMs = []
  for (const white of whiteFramePts(muxedFile)) {
    const placedS = reference.videoStartEpochS + white.frame / reference.videoNominalFps
    const sentS = flashes.find((f) => Math.abs(f - placedS) < 0.5)
    if (sentS === undefined) continue
    const second = Math.floor(sentS + 0.5)
    const wavIndex = wavClicks.find((i) => Math.abs(sync.audioStartEpochS + i / RATE - second) < 0.45)
    if (wavIndex === undefined) continue
    const clickClaimedS = sync.audioStartEpochS + wavIndex / RATE
    const errorS = (i) => i / RATE - white.ptsS - (clickClaimedS - sentS)
    const referencePtsS = white.frame / reference.videoNominalFps
    const expectedS = referenceErrorS + (sync.offsetS - reference.offsetS) - (white.ptsS - referencePtsS)
    const muxIndex = muxClicks.reduce(
      (best, i) =>
        best === undefined || Math.abs(errorS(i) - expectedS) < Math.abs(errorS(best) - expectedS) ? i : best,
      undefined,
    )
    if (muxIndex === undefined || Math.abs(errorS(muxIndex) - expectedS) > 0.5) continue
    errorsMs.push(errorS(muxIndex) * 1000)
  }
  if (!errorsMs.length) return { pairs: 0 }
  return {
    pairs: errorsMs.length,
    firstMs: errorsMs[0],
    medianMs: median(errorsMs),
    spreadMs: Math.max(...errorsMs) - Math.min(...errorsMs),
    worstMs: errorsMs.reduce((a, b) => (Math.abs(b) > Math.abs(a) ? b : a)),
    driftMs: errorsMs.at(-1) - errorsMs[0],
  }
}

/** record-audio mux on the recording's sync file, with flags; the muxed file and the record it used. */
function muxWith(cwd, syncFile, name, flags) {
  const muxed = path.join(cwd, `${name}.mp4`)
  const out = run(process.execPath, [TOOL, 'mux', syncFile, '--json', '--muxed-out', muxed, ...flags], { cwd })
  if (out.status !== 0) throw new Error(`mux (${name}): ${out.stderr}`)
  return { muxed, sync: JSON.parse(out.stdout), stderr: out.stderr }
}

/** record-audio check on a file: the median of its own flash-to-click residuals, ms. */
function checkMs(file) {
  const out = run(process.execPath, [TOOL, 'check', file, '--json'])
  const fit = out.stdout ? JSON.parse(out.stdout) : null
  return fit?.medianS == null ? Number.NaN : fit.medianS * 1000
}

/**
 * Makes each click heard when its flash is sent. A click is heard one null-sink latency after it is
 * played (on the capture's clock: its first sample's time + index / rate), and that latency is new
 * with every capture stream (−130 to +400 ms: SYNC.md). Every 2 s the clicks heard since the last
 * look are found in the WAV being written and matched with when they were played; once four in a
 * row agree, the later clicks are played that much earlier. What remains (the latency moving after
 * that) shows in the check − bench column.
 */
function keepClicksOnFlashes(wavFile, syncFile, clicks, setLead, device = 0) {
  let readSamples = 0
  const latenciesS = []
  const leadsS = []
  const look = () => {
    const sync = JSON.parse(fs.readFileSync(syncFile, 'utf8'))
    const startS = (sync.audios?.[device] ?? sync).audioStartEpochS
    if (!startS) return
    const bytes = fs.readFileSync(wavFile)
    const data = bytes.indexOf('data', 12, 'latin1') + 8 // the size there is not final yet: read to the end
    const samples = new Int16Array(bytes.buffer, bytes.byteOffset + data, Math.floor((bytes.length - data) / 2))
    // A click is 2 ms: leave the last 10 ms for the next look, so that none is cut in two.
    const upTo = Math.max(readSamples, samples.length - RATE / 100)
    for (const i of clickOnsets(samples.subarray(readSamples, upTo))) {
      const heardS = startS + (readSamples + i) / RATE
      const playedS = clicks.played.reduce((a, b) => (Math.abs(b - heardS) < Math.abs(a - heardS) ? b : a), -Infinity)
      if (heardS - playedS > -0.5 && heardS - playedS < 1) latenciesS.push(heardS - playedS)
    }
    readSamples = upTo
    // Set once, from four clicks in a row within 5 ms of each other: moving it again makes a click
    // play twice or not at all while the change passes through the player's queue.
    const recent = latenciesS.slice(-4)
    const leadS = median(recent)
    if (leadsS.length || recent.length < 4 || !recent.every((x) => Math.abs(x - leadS) < 0.005)) return
    setLead(leadS)
    leadsS.push(leadS)
  }
  const timer = setInterval(look, 2000)
  return {
    look,
    stop() {
      clearInterval(timer)
      return { clicks: latenciesS.length, leadsS }
    },
  }
}

/**
 * The camera streaming, record-audio recording it (one microphone per click stream: the sinks'
 * monitors) with `args`, and each microphone's clicks kept heard with their flashes.
 */
async function startSession(clickStreams, args) {
  const cwd = tempDir('ra-bench-trl-')
  const port = 5077 + Math.floor(Math.random() * 500)
  const camera = startCamera(port, clickStreams)
  await sleep(1000)
  const devices = clickStreams.flatMap((c) => ['--device', `${c.sink}.monitor`])
  const tool = startTool(['fish', '--format', 'pulse', ...devices, ...args], { cwd, env: clickStreams[0].env })
  const wavs = clickStreams.length === 1 ? ['fish-audio.wav'] : clickStreams.map((_, k) => `fish-audio-${k + 1}.wav`)
  for (const wav of wavs) await tool.recording(path.join(cwd, wav), 20000)
  const controllers = clickStreams.map((clicks, k) =>
    keepClicksOnFlashes(
      path.join(cwd, wavs[k]),
      path.join(cwd, 'fish-audio-sync.json'),
      clicks,
      (leadS) => camera.setClickLead(k, leadS),
      k,
    ),
  )
  await sleep(9000) // four clicks heard, then the lead set: before TracktorLive starts
  /** ctrl-c, and what the recording left: its sync file and record, its stderr, the clicks' lead. */
  const stop = async () => {
    const lead = controllers.map((c) => c.stop())[0]
    tool.ctrlC()
    const result = await tool.exited
    await camera.stop()
    if (result.code !== 0) throw new Error(`record-audio exited ${result.code}: ${result.stderr}`)
    const syncFile = path.join(cwd, 'fish-audio-sync.json')
    return { syncFile, sync: JSON.parse(fs.readFileSync(syncFile, 'utf8')), stderr: result.stderr, lead }
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

async function session(clicks, seconds, latencyS = null) {
  const { cwd, port, camera, stop } = await startSession([clicks], [])
  const { code, log: trackerLog } = await runTracktor(cwd, port, seconds)
  await sleep(1000)
  const { syncFile, sync, stderr, lead } = await stop()
  if (!sync.muxCommand) throw new Error(`no video (TracktorLive exited ${code}): ${trackerLog}\n${stderr}`)
  const mux = run('bash', ['-c', sync.muxCommand])
  if (mux.status !== 0) throw new Error(`mux: ${mux.stderr}`)
  const wavClicks = clickOnsets(decodeAudio(sync.audioFile))
  const rows = [
    {
      anchor: `tracking CSV (${sync.trackingCsvEpochSource ?? 'none'})`,
      sync,
      checkMs: checkMs(sync.muxedFile),
      ...score(sync.muxedFile, sync, camera.flashes, wavClicks),
    },
  ]
  const events = muxWith(cwd, syncFile, 'events', ['--events'])
  rows.push({
    anchor: `--events (on the tracking CSV's anchors: ${events.sync.events?.used ?? 0} events used)`,
    sync: events.sync,
    checkMs: checkMs(events.muxed),
    ...score(events.muxed, events.sync, camera.flashes, wavClicks, sync, rows[0].medianMs / 1000),
  })
  if (latencyS != null) {
    const withLatency = muxWith(cwd, syncFile, 'latency', [`--camera-latency=${latencyS.toFixed(3)}`])
    rows.push({
      anchor: `tracking CSV + --camera-latency=${latencyS.toFixed(3)} (from the first session)`,
      sync: withLatency.sync,
      checkMs: checkMs(withLatency.muxed),
      ...score(withLatency.muxed, withLatency.sync, camera.flashes, wavClicks, sync, rows[0].medianMs / 1000),
    })
  }
  const csv = sync.trackingCsvFile
  // TracktorLive's timesync cassette needs pandas and pyarrow (not in Debian's python3 here): its file
  // is written as the cassette would (TRACKTORLIVE.md), one row per frame but the last, t_init + the
  // frame's read time.
  const timesyncFile = path.join(cwd, 'fish-timesyncUTC.parquet')
  if (csv) {
    const { parseTrackingTimes } = await import('../dist/record-audio.mjs')
    const { parquetWriteFile } = await import('hyparquet-writer')
    const tInitS = Number(fs.readFileSync(path.join(cwd, 't_init'), 'utf8'))
    const data = parseTrackingTimes(fs.readFileSync(csv, 'utf8'))
      .slice(0, -1)
      .map((t) => tInitS + t)
    parquetWriteFile({ filename: timesyncFile, columnData: [{ name: 'timestampUTC', data, type: 'DOUBLE' }] })
  }
  if (csv) fs.renameSync(csv, `${csv}.away`)
  try {
    if (csv) {
      const timesync = muxWith(cwd, syncFile, 'timesync', ['--timesync', timesyncFile])
      rows.push({
        anchor: `timesync file (no CSV; ${timesync.sync.videoStartSource})`,
        sync: timesync.sync,
        checkMs: checkMs(timesync.muxed),
        ...score(timesync.muxed, timesync.sync, camera.flashes, wavClicks, sync, rows[0].medianMs / 1000),
      })
      fs.renameSync(timesyncFile, `${timesyncFile}.away`) // the rows below: no timesync either
    }
    const ulidOnly = muxWith(cwd, syncFile, 'ulid', [])
    rows.push({
      anchor: 'ULID + mtime (no CSV)',
      sync: ulidOnly.sync,
      checkMs: checkMs(ulidOnly.muxed),
      ...score(ulidOnly.muxed, ulidOnly.sync, camera.flashes, wavClicks, sync, rows[0].medianMs / 1000),
    })
    const nominal = muxWith(cwd, syncFile, 'ulid-nominal', ['--no-drift-fix'])
    rows.push({
      anchor: 'ULID alone (no CSV, --no-drift-fix)',
      sync: nominal.sync,
      checkMs: checkMs(nominal.muxed),
      ...score(nominal.muxed, nominal.sync, camera.flashes, wavClicks, sync, rows[0].medianMs / 1000),
    })
  } finally {
    if (csv) fs.renameSync(`${csv}.away`, csv)
  }
  return { rows, sync, stderr, seconds, lead }
}

/**
 * One microphone across three trials: TracktorLive started and stopped three times inside one
 * recording, record-audio --all-videos; each trial's command run and scored like the single case.
 */
async function trialsSession(clicks, trialS) {
  const { cwd, port, camera, stop } = await startSession([clicks], ['--all-videos'])
  const startedMs = Date.now()
  for (let trial = 0; trial < 3; trial++) {
    const { code, log } = await runTracktor(cwd, port, trialS)
    if (code !== 0) throw new Error(`TracktorLive (trial ${trial + 1}) exited ${code}: ${log}`)
    await sleep(3000)
  }
  const { sync } = await stop()
  const wavClicks = clickOnsets(decodeAudio(sync.audioFile))
  const rows = sync.videos.map((video, i) => {
    const mux = run('bash', ['-c', video.muxCommand])
    if (mux.status !== 0) throw new Error(`mux (trial ${i + 1}): ${mux.stderr}`)
    const trialSync = { ...sync, ...video }
    return {
      anchor: `--all-videos, trial ${i + 1} of ${sync.videos.length} (${video.videoStartSource})`,
      sync: trialSync,
      checkMs: checkMs(video.muxedFile),
      ...score(video.muxedFile, trialSync, camera.flashes, wavClicks),
    }
  })
  return { rows, recordingS: sync.audioDurationS, wallS: (Date.now() - startedMs) / 1000 }
}

/**
 * Two microphones (the two sinks' monitors, each with its own clicks at the flashes) in one
 * recording: one muxed file with an audio stream each, each stream scored like the single case.
 */
async function devicesSession(clickStreams, seconds) {
  const { cwd, port, camera, stop } = await startSession(clickStreams, [])
  const { code, log } = await runTracktor(cwd, port, seconds)
  if (code !== 0) throw new Error(`TracktorLive exited ${code}: ${log}`)
  await sleep(1000)
  const { sync } = await stop()
  const mux = run('bash', ['-c', sync.muxCommand])
  if (mux.status !== 0) throw new Error(`mux: ${mux.stderr}`)
  const first = { ...sync, offsetS: sync.audioPlacements[0].offsetS }
  return sync.audios.map((part, k) => {
    const streamSync = { ...sync, ...part, offsetS: sync.audioPlacements[k].offsetS }
    const wavClicks = clickOnsets(decodeAudio(part.audioFile))
    const firstScore = k ? null : score(sync.muxedFile, first, camera.flashes, wavClicks)
    return {
      anchor: `2 devices, stream ${k + 1}: ${part.audioDevice} (tracking CSV)`,
      sync: streamSync,
      checkMs: Number.NaN, // check reads a file's first audio stream
      ...(firstScore ?? score(sync.muxedFile, streamSync, camera.flashes, wavClicks, first, 0, k)),
    }
  })
}

const fmt = (x, digits = 1) => (Number.isFinite(x) ? x.toFixed(digits) : '—')

const pulse = await startPulse({ tone: false })
const clicks = startClickStream(pulse.env, 'ra_sink')
const secondSink = spawnSync(
  'pactl',
  ['load-module', 'module-null-sink', 'sink_name=ra_second', 'rate=48000', 'channels=1'],
  { env: pulse.env },
)
if (secondSink.status !== 0) throw new Error(`a second null sink: ${secondSink.stderr}`)
const secondClicks = startClickStream(pulse.env, 'ra_second')
await sleep(1000)
let run1
let trials
let devices
try {
  // The camera's latency, measured once: the first session's error with the frame clock alone.
  const first = await session(clicks, quick ? 20 : 30)
  const latencyS = -first.rows[0].medianMs / 1000
  run1 = await session(clicks, quick ? 20 : 60, Number.isFinite(latencyS) && latencyS > 0 ? latencyS : null)
  trials = await trialsSession(clicks, quick ? 12 : 22)
  devices = await devicesSession([clicks, secondClicks], quick ? 20 : 60)
} finally {
  clicks.stop()
  secondClicks.stop()
  await pulse.stop()
}
const s = run1.sync
console.log(
  `\nThe real TracktorLive, ${run1.seconds} s of a live 30 fps stream: camera ${fmt(s.cameraFps, 4)} fps by the frame clock,` +
    ` ${s.bufferedFrames} buffered frames at the start, frame 0 read ${fmt((s.firstReadLateS ?? Number.NaN) * 1000, 0)} ms after it was sent\n`,
)
console.log('Physical sync error of the muxed file, ms (flash sent vs click heard; + means the sound comes late)\n')
console.log(
  '| anchor | pairs | first flash | median | spread (max − min) | worst | last − first | itsscale | check: median | check − bench |',
)
console.log('|---|---|---|---|---|---|---|---|---|---|')
for (const r of [...run1.rows, ...trials.rows, ...devices])
  console.log(
    `| ${r.anchor} | ${r.pairs} | ${fmt(r.firstMs)} | ${fmt(r.medianMs)} | ${fmt(r.spreadMs)} | ${fmt(r.worstMs)} | ${fmt(r.driftMs)} | ${r.sync.itsscale ? r.sync.itsscale.toFixed(6) : '—'} | ${fmt(r.checkMs)} | ${fmt(r.checkMs - r.medianMs)} |`,
  )
console.log(
  "\ncheck − bench: the file's own flash-to-click residual (record-audio check) minus the physical error above, i.e." +
    " how far apart this bench's click and flash really were on the capture's clock. A click is heard one null-sink" +
    ' latency after it is played (18–400 ms and more, new with every capture and moving during one: SYNC.md); this' +
    ` session played them ${fmt(run1.lead.leadsS[0] * 1000)} ms early (measured on its own first` +
    ' clicks), so that a click and its flash are one event' +
    " as a lab's clap and LED are: what remains of it is --events' error, and the same figure in every row is check" +
    ' agreeing with the bench.',
)
console.log(
  `\n--all-videos: one recording of ${fmt(trials.recordingS, 0)} s with three TracktorLive trials in it (another capture,` +
    ' so its own null-sink latency); each trial scored like the single case above.',
)

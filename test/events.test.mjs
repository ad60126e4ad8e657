// Sync events: a flash in view and a click heard with it, in real files that the real ffmpeg makes
// from frames and samples generated here, so that the sync is known by construction. `check` reads
// a file's own sync, `mux --events` corrects anchors that are off.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { EVENT_TIMING_FLOOR_S } from '../dist/record-audio.mjs'
import {
  tempDir,
  run,
  requireBinary,
  ulidAt,
  waitFor,
  alive,
  TOOL,
  seededRandom,
  decodeAudio,
  clicksIn,
  expectedPlusMinus,
} from './helpers.mjs'

const FPS = 30
const RATE = 48000
const [W, H] = [160, 120]

const random = seededRandom

/** Onsets at irregular gaps (0.6–2.4 s), each at a random phase inside its frame. */
function irregularTrain(seed, n, firstS = 0.7) {
  const rand = random(seed)
  const times = [firstS + rand() / FPS]
  while (times.length < n) times.push(times.at(-1) + 0.6 + rand() * 1.8)
  return times
}

/**
 * A `durationS` video whose light is on for 0.1 s from each flash: each frame's grey is how long
 * the light was on during its exposure (the whole frame period, from its presentation time).
 */
function makeVideo(file, flashesS, durationS, [w, h] = [W, H]) {
  requireBinary('ffmpeg')
  const frames = Math.round(durationS * FPS)
  const raw = Buffer.alloc(frames * w * h)
  for (let k = 0; k < frames; k++) {
    const [from, to] = [k / FPS, (k + 1) / FPS]
    let lit = 0
    for (const on of flashesS) lit += Math.max(0, Math.min(to, on + 0.1) - Math.max(from, on))
    raw.fill(Math.round(30 + 190 * lit * FPS), k * w * h, (k + 1) * w * h)
  }
  const made = run(
    'ffmpeg',
    [
      ...['-v', 'error', '-f', 'rawvideo', '-pix_fmt', 'gray', '-s', `${w}x${h}`, '-r', String(FPS), '-i', '-'],
      ...['-c:v', 'mpeg4', '-q:v', '2', '-pix_fmt', 'yuv420p', file],
    ],
    { input: raw, maxBuffer: 1 << 20 },
  )
  assert.equal(made.status, 0, made.stderr)
}

/** `durationS` of mono 48 kHz samples: room noise, and a 2 ms burst starting at the sample of each click. */
function clickSamples(clicksS, durationS) {
  const rand = random(99)
  const samples = new Int16Array(Math.round(durationS * RATE))
  for (let i = 0; i < samples.length; i++) samples[i] = Math.round((rand() - 0.5) * 60)
  for (const t of clicksS) {
    const at = Math.round(t * RATE)
    for (let i = 0; i < 96 && at + i < samples.length; i++)
      if (at + i >= 0) samples[at + i] = i % 12 < 6 ? 20000 : -20000
  }
  return Buffer.from(samples.buffer)
}

function makeWav(file, clicksS, durationS) {
  const made = run(
    'ffmpeg',
    [...['-v', 'error', '-f', 's16le', '-ar', String(RATE), '-ac', '1', '-i', '-', '-c:a', 'pcm_s16le', file]],
    { input: clickSamples(clicksS, durationS) },
  )
  assert.equal(made.status, 0, made.stderr)
}

/** One file with both: picture and sound start together, so a click's time in it is its time in the samples. */
function makeMuxed(dir, flashesS, clicksS, durationS) {
  const video = path.join(dir, 'video.mp4')
  const wav = path.join(dir, 'sound.wav')
  makeVideo(video, flashesS, durationS)
  makeWav(wav, clicksS, durationS + 2)
  const file = path.join(dir, 'both.mov')
  const made = run('ffmpeg', [
    ...['-v', 'error', '-i', video, '-i', wav, '-map', '0:v', '-map', '1:a', '-c:v', 'copy', '-c:a', 'pcm_s16le'],
    ...['-f', 'mov', file],
  ])
  assert.equal(made.status, 0, made.stderr)
  return file
}

function check(file) {
  const out = run(process.execPath, [TOOL, 'check', file, '--json'])
  return { ...out, fit: out.stdout ? JSON.parse(out.stdout) : null }
}

test('check: flashes at random sub-frame phases with the sound exactly with the light: median within 1 ms of 0, spread ≤ 3 ms', () => {
  const flashes = irregularTrain(1, 12)
  const file = makeMuxed(tempDir(), flashes, flashes, 20)
  const { status, fit, stderr } = check(file)
  assert.equal(status, 0, stderr)
  assert.equal(fit.used, 12)
  assert.ok(Math.abs(fit.medianS) <= 0.001 && fit.spreadS <= 0.003, JSON.stringify({ ...fit, events: undefined }))
  // Each flash within 2 ms of its construction: the partly lit frame times it, not the first bright one.
  for (const [i, p] of fit.events.entries()) assert.ok(Math.abs(p.flashS - flashes[i]) < 0.002, JSON.stringify(p))
  const human = run(process.execPath, [TOOL, 'check', file])
  assert.match(human.stderr, /✔ both\.mov: 12 events: sound [+−]0\.\d ms from the picture/)
})

test('check: irregular gaps with the sound 1.3 s late (past every neighbouring flash) says +1300 ± 1 ms', () => {
  const flashes = irregularTrain(2, 10)
  const { status, fit, stderr } = check(
    makeMuxed(
      tempDir(),
      flashes,
      flashes.map((t) => t + 1.3),
      20,
    ),
  )
  assert.equal(status, 0, stderr)
  assert.equal(fit.used, 10)
  assert.ok(Math.abs(fit.medianS - 1.3) <= 0.001, String(fit.medianS))
  assert.ok(Math.abs(fit.candidates[0].offsetS - 1.3) <= 0.001 && fit.candidates.length > 1)
})

test('check: a regular 1 s train with the sound 0.6 s late is +600 ms or ambiguous (exit 1), never −400 ms', () => {
  const phase = 0.3 + random(3)() / FPS
  const flashes = Array.from({ length: 12 }, (_, k) => phase + k)
  const { status, fit, stdout } = check(
    makeMuxed(
      tempDir(),
      flashes,
      flashes.map((t) => t + 0.6),
      14,
    ),
  )
  if (status === 0) assert.ok(Math.abs(fit.medianS - 0.6) <= 0.001, stdout)
  else {
    assert.equal(status, 1)
    assert.equal(fit.consistent, false)
    assert.equal(fit.notes[0].kind, 'ambiguous', stdout)
    const offsetsMs = fit.notes[0].candidates.map((c) => Math.round(c.offsetS * 1000))
    assert.ok(offsetsMs.includes(600) && offsetsMs.includes(-400), String(offsetsMs))
  }
  const human = run(process.execPath, [TOOL, 'check', path.join(path.dirname(fit.file), 'both.mov')])
  assert.doesNotMatch(human.stderr, /✔.*sound −/)
  if (status === 1) assert.match(human.stderr, /✖ both\.mov: no verdict: the train is ambiguous at a 1\.000 s period/)
})

test('check: a file with no sound gives no verdict, exit 1', () => {
  const dir = tempDir()
  const video = path.join(dir, 'video.mp4')
  makeVideo(video, irregularTrain(4, 5), 10)
  const silent = path.join(dir, 'silent.mp4')
  run('ffmpeg', ['-v', 'error', '-i', video, '-f', 'lavfi', '-i', 'anullsrc=r=48000:cl=mono', '-shortest', silent])
  const none = check(silent)
  assert.equal(none.status, 1)
  assert.equal(none.fit.consistent, false)
  assert.equal(none.fit.notes[0].kind, 'no-events')
})

/** A feed folder with a video and the WAV that recorded beside it, the audio starting `audioLateS` after the video. */
function makeRecording(dir, flashesS, clicksInVideoS, durationS, audioLateS, videoStartMs) {
  fs.mkdirSync(path.join(dir, 'feed'))
  const video = path.join(dir, 'feed', `${ulidAt(videoStartMs)}.mp4`)
  makeVideo(video, flashesS, durationS)
  const endS = videoStartMs / 1000 + durationS // as a recorder would leave it: written until its last frame
  fs.utimesSync(video, endS, endS)
  const audio = path.join(dir, 'feed-audio.wav')
  const audioDurationS = durationS + 2
  makeWav(
    audio,
    clicksInVideoS.map((t) => t - audioLateS),
    audioDurationS,
  )
  return { video, audio, audioDurationS }
}

/** The sync file a recording would have written, with the audio's start stamped `stampErrorS` off. */
function syncFileFor(dir, r, videoStartMs, audioLateS, stampErrorS) {
  const syncFile = path.join(dir, 'feed-audio-sync.json')
  fs.writeFileSync(
    syncFile,
    JSON.stringify({
      tool: 'record-audio test',
      state: 'stopped',
      feedDir: path.join(dir, 'feed'),
      audioFile: r.audio,
      audioFormat: 'pulse',
      audioDevice: 'test',
      audioSampleRate: RATE,
      audioChannels: 1,
      audioStartEpochS: videoStartMs / 1000 + audioLateS + stampErrorS,
      audioStartSource: 'ffmpeg-input-start',
      audioDurationS: r.audioDurationS,
      timing: { driftFix: false },
    }),
  )
  return syncFile
}

test('mux --events: anchors 1.3 s off (past the neighbouring flash) are corrected on an irregular train; the muxed file checks at 0 ms; stored in the sync file', () => {
  const dir = tempDir()
  const videoStartMs = Date.now() - 60000
  const flashes = irregularTrain(5, 10)
  // The audio started 0.25 s before the first frame; its stamp says 1.3 s later than that.
  const r = makeRecording(dir, flashes, flashes, 20, -0.25, videoStartMs)
  const syncFile = syncFileFor(dir, r, videoStartMs, -0.25, 1.3)
  const plain = run(process.execPath, [TOOL, 'mux', syncFile, '--muxed-out', path.join(dir, 'plain.mp4')])
  assert.equal(plain.status, 0, plain.stderr)
  const off = check(path.join(dir, 'plain.mp4')).fit
  assert.ok(Math.abs(off.medianS - 1.3) < 0.002, `the anchors put the sound 1.3 s late: ${off.medianS}`)

  const events = path.join(dir, 'events.mp4')
  const fixed = run(process.execPath, [TOOL, 'mux', syncFile, '--events', '--json', '--muxed-out', events])
  assert.equal(fixed.status, 0, fixed.stderr)
  assert.match(fixed.stderr, /✔ Events: the anchors were off by \+1(299|300)\.\d ms/)
  const record = JSON.parse(fixed.stdout)
  assert.equal(record.events.applied, true)
  assert.equal(record.events.used, 10)
  assert.equal(record.events.rateApplied, false) // no drift was built in
  assert.ok(Math.abs(record.events.candidates[0].offsetMs - 1300) < 1, JSON.stringify(record.events.candidates))
  assert.ok(Math.abs(record.offsetS - -0.25) < 0.001, String(record.offsetS))
  const after = check(events).fit
  assert.ok(Math.abs(after.medianS) < 0.001 && after.spreadS < 0.003, JSON.stringify({ ...after, events: undefined }))
})

test('mux --events: two events 10 s apart, one a frame off, set the offset (their mean) and no retiming', () => {
  const dir = tempDir()
  const videoStartMs = Date.now() - 60000
  // The light at 5 s and 15 s + a frame; the sound at 5 s and 15 s; the audio started with the video.
  const r = makeRecording(dir, [5, 15 + 1 / FPS], [5, 15], 20, 0, videoStartMs)
  const syncFile = syncFileFor(dir, r, videoStartMs, 0, 0.3)
  const out = run(process.execPath, [TOOL, 'mux', syncFile, '--events', '--json', '--print', '--verbose'])
  assert.equal(out.status, 0, out.stderr)
  const record = JSON.parse(out.stdout)
  assert.equal(record.events.applied, true)
  assert.equal(record.events.rateApplied, false)
  assert.equal(record.itsscale, null)
  assert.equal(record.events.notes.at(-1).kind, 'rate-not-applied')
  assert.match(out.stderr, /Events: no rate from 2 pairs/)
  // The two residuals are 0 and −1 frame: the offset is the audio's true start less their mean.
  assert.ok(Math.abs(record.offsetS - 1 / FPS / 2) < 0.001, String(record.offsetS))
})

/** `mux --events` (which muxes) on a 2 min recording, stopped by `stop(toolPid)` while it decodes the events. */
async function stopWhileDecoding(stop) {
  const dir = tempDir()
  const videoStartMs = Date.now() - 300000
  const flashes = irregularTrain(6, 60)
  const r = makeRecording(dir, flashes, flashes, 120, 0, videoStartMs)
  const syncFile = syncFileFor(dir, r, videoStartMs, 0, 0)
  const muxed = path.join(dir, 'muxed.mp4')
  // Detached: its own process group, as a terminal's foreground job (a ctrl-c reaches the tool and its ffmpeg).
  const tool = spawn(process.execPath, [TOOL, 'mux', syncFile, '--events', '--muxed-out', muxed], {
    cwd: dir,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stderr = ''
  tool.stderr.on('data', (chunk) => {
    stderr += chunk
  })
  const exited = new Promise((resolve) => tool.on('close', resolve))
  const children = () =>
    fs
      .readdirSync('/proc')
      .filter((entry) => /^\d+$/.test(entry))
      .filter((entry) => {
        try {
          const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8')
          return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === tool.pid
        } catch {
          return false
        }
      })
      .filter((entry) => /ffmpeg|ffprobe/.test(cmdline(entry)))
  // A child may end between two reads of /proc: it then has no command line.
  const cmdline = (pid) => {
    try {
      return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8')
    } catch {
      return ''
    }
  }
  await waitFor(() => children().some((pid) => cmdline(pid).includes('rawvideo')), 20000, 'the events being decoded')
  const decoding = children().map(Number)
  stop(tool.pid)
  const code = await exited
  assert.notEqual(code, 0, stderr)
  assert.match(stderr, /✖ Interrupted \(a stop request\) before the mux: nothing was muxed/)
  assert.match(stderr, /⚠ Events: a stop request came while they were being read; aligned on the anchors/)
  assert.doesNotMatch(stderr, /Events: ffmpeg failed/)
  assert.doesNotMatch(stderr, /✔ Muxed/)
  assert.equal(fs.existsSync(muxed), false)
  assert.deepEqual(
    fs.readdirSync(dir).filter((name) => name.includes('partial')),
    [],
  )
  for (const pid of decoding) assert.equal(alive(pid), false, `ffmpeg ${pid} still running`)
}

test('mux --events: a ctrl-c (to the whole process group, ffmpeg too) while the events are decoded stops there: says so, muxes nothing, leaves no ffmpeg', () =>
  stopWhileDecoding((pid) => process.kill(-pid, 'SIGINT')))

test('mux --events: a SIGTERM to the tool alone while the events are decoded stops its ffmpeg and muxes nothing', () =>
  stopWhileDecoding((pid) => process.kill(pid, 'SIGTERM')))

/**
 * A WAV past 4 GiB (RF64, 12.4 h of 48 kHz mono) that costs no disk: the header ffmpeg writes, then
 * sparse silence, with the clicks written where they fall. Returns the sample count.
 */
function makeHugeWav(file, clicksS, decoysS) {
  const small = `${file}.head.wav`
  const made = run('ffmpeg', [
    ...['-v', 'error', '-f', 'lavfi', '-i', `anullsrc=r=${RATE}:cl=mono`, '-t', '0.01', '-rf64', 'always'],
    ...['-c:a', 'pcm_s16le', '-fflags', '+bitexact', '-map_metadata', '-1', small],
  ])
  assert.equal(made.status, 0, made.stderr)
  const head = fs.readFileSync(small)
  fs.rmSync(small)
  assert.equal(head.toString('latin1', 0, 4), 'RF64')
  const dataAt = head.indexOf('data', 12, 'latin1') + 8
  const samples = 2 ** 31 + 48000 * 600 // 4 GiB of samples and ten minutes more
  const bytes = BigInt(samples * 2)
  const header = Buffer.from(head.subarray(0, dataAt))
  header.writeBigUInt64LE(BigInt(dataAt - 8) + bytes, 20) // ds64: the RIFF size, the data size, the sample count
  header.writeBigUInt64LE(bytes, 28)
  header.writeBigUInt64LE(BigInt(samples), 36)
  fs.writeFileSync(file, header)
  fs.truncateSync(file, dataAt + samples * 2)
  const fd = fs.openSync(file, 'r+')
  const burst = Buffer.alloc(96 * 2)
  for (let i = 0; i < 96; i++) burst.writeInt16LE(i % 12 < 6 ? 20000 : -20000, 2 * i)
  for (const t of [...clicksS, ...decoysS]) fs.writeSync(fd, burst, 0, burst.length, dataAt + 2 * Math.round(t * RATE))
  fs.closeSync(fd)
  return samples
}

test('mux --events on a WAV past 4 GiB decodes only the video’s span (± the search margin) and aligns on it', () => {
  const dir = tempDir()
  const videoStartMs = Date.now() - 120000
  fs.mkdirSync(path.join(dir, 'feed'))
  const video = path.join(dir, 'feed', `${ulidAt(videoStartMs)}.mp4`)
  const flashes = irregularTrain(7, 10)
  makeVideo(video, flashes, 20)
  fs.utimesSync(video, videoStartMs / 1000 + 20, videoStartMs / 1000 + 20)
  const audio = path.join(dir, 'feed-audio.wav')
  const videoInAudioS = 2 ** 31 / RATE + 300 // the video began this far into the audio, past its first 4 GiB
  // A decoy click train an hour before the video: outside any span the anchors allow, never read.
  const samples = makeHugeWav(
    audio,
    flashes.map((t) => t + videoInAudioS),
    [0, 1.7, 2.3, 4.1].map((t) => t + videoInAudioS - 3600),
  )
  assert.ok(fs.statSync(audio).size > 2 ** 32)
  fs.writeFileSync(
    path.join(dir, 'feed-audio-sync.json'),
    JSON.stringify({
      tool: 'record-audio test',
      state: 'stopped',
      feedDir: path.join(dir, 'feed'),
      audioFile: audio,
      audioFormat: 'pulse',
      audioDevice: 'test',
      audioSampleRate: RATE,
      audioChannels: 1,
      audioStartEpochS: videoStartMs / 1000 - videoInAudioS + 0.7, // the stamp 0.7 s late
      audioStartSource: 'ffmpeg-input-start',
      audioDurationS: samples / RATE,
      timing: { driftFix: false },
    }),
  )
  const out = run(process.execPath, [
    TOOL,
    'mux',
    path.join(dir, 'feed-audio-sync.json'),
    '--events',
    '--json',
    '--print',
  ])
  assert.equal(out.status, 0, out.stderr)
  assert.doesNotMatch(out.stderr, /Error|at .*\.mjs:\d+/) // no stack trace
  const record = JSON.parse(out.stdout)
  assert.equal(record.events.applied, true, out.stderr)
  assert.equal(record.events.clicks, flashes.length) // the decoys an hour away were not decoded
  assert.ok(Math.abs(record.offsetS - -videoInAudioS) < 0.001, String(record.offsetS + videoInAudioS))
})

test('mux --events: a video whose clock runs 1000 ppm off the sound is retimed by the events (rate ± error reported); the muxed file checks at 0 ms', () => {
  const dir = tempDir()
  const videoStartMs = Date.now() - 120000
  const flashes = irregularTrain(8, 25) // about 37 s
  // A second of the video's timeline is 1.001 s of the sound's: 37 ms apart by the last flash.
  const r = makeRecording(
    dir,
    flashes,
    flashes.map((t) => t * 1.001),
    40,
    0.1,
    videoStartMs,
  )
  const syncFile = syncFileFor(dir, r, videoStartMs, 0.1, 0.4)
  const muxed = path.join(dir, 'events.mp4')
  const out = run(process.execPath, [TOOL, 'mux', syncFile, '--events', '--json', '--muxed-out', muxed])
  assert.equal(out.status, 0, out.stderr)
  const record = JSON.parse(out.stdout)
  assert.equal(record.events.rateApplied, true, out.stderr)
  const { slopePpm, slopeErrorPpm } = record.events
  assert.ok(Math.abs(slopePpm - 1000) < Math.max(3 * slopeErrorPpm, 20), `${slopePpm} ± ${slopeErrorPpm}`)
  assert.ok(Math.abs(record.itsscale - 1.001) < 20e-6, String(record.itsscale))
  assert.ok(Math.abs(record.offsetS - 0.1) < 0.002, String(record.offsetS))
  assert.match(out.stderr, /✔ Events: .*the video retimed by (99\d|10\d\d) ppm/)
  const after = check(muxed).fit
  assert.equal(after.slope, 0) // nothing significant left
  assert.ok(Math.abs(after.medianS) < 0.001 && after.spreadS < 0.003, JSON.stringify({ ...after, events: undefined }))
})

test('mux --events, two devices: each is placed by its own clicks, so one device’s stamp error never moves the other', () => {
  const dir = tempDir()
  const videoStartMs = Date.now() - 60000
  const flashes = irregularTrain(8, 10)
  // Both microphones started 0.25 s before the first frame and heard every flash; device 1's stamp
  // says 0.3 s later than that, device 2's 0.4 s earlier.
  const r = makeRecording(dir, flashes, flashes, 20, -0.25, videoStartMs)
  const second = path.join(dir, 'feed-audio-2.wav')
  makeWav(
    second,
    flashes.map((t) => t + 0.25),
    r.audioDurationS,
  )
  const syncFile = syncFileFor(dir, r, videoStartMs, -0.25, 0.3)
  const record = JSON.parse(fs.readFileSync(syncFile, 'utf8'))
  const part = (file, stampErrorS, device) => ({
    audioFile: file,
    audioFormat: 'pulse',
    audioDevice: device,
    audioSampleRate: RATE,
    audioChannels: 1,
    audioStartEpochS: videoStartMs / 1000 - 0.25 + stampErrorS,
    audioStartSource: 'ffmpeg-input-start',
    audioDurationS: r.audioDurationS,
    audioFailed: null,
  })
  record.audios = [part(r.audio, 0.3, 'test'), part(second, -0.4, 'second')]
  fs.writeFileSync(syncFile, JSON.stringify(record))
  const out = run(process.execPath, [TOOL, 'mux', syncFile, '--events', '--json', '--print', '--verbose'])
  assert.equal(out.status, 0, out.stderr)
  const placed = JSON.parse(out.stdout).audioPlacements
  assert.equal(placed.length, 2)
  for (const [k, p] of placed.entries())
    assert.ok(Math.abs(p.offsetS - -0.25) < 0.002, `device ${k + 1} placed at ${p.offsetS} s, truly −0.25 s`)
  assert.match(
    out.stderr,
    /Events, "second": the anchors were off by −400\.\d ms|Events, "second": the anchors were off by −399\.\d ms/,
  )
})

test("mux later with the stop's offset as witness: moved with the same timing, said with ⚠ and nothing muxed (exit 1); a new flag explains a move", () => {
  const dir = tempDir()
  const videoStartMs = Date.now() - 60000
  const r = makeRecording(dir, irregularTrain(9, 6), irregularTrain(9, 6), 12, 0.5, videoStartMs)
  const syncFile = syncFileFor(dir, r, videoStartMs, 0.5, 0)
  const record = JSON.parse(fs.readFileSync(syncFile, 'utf8'))
  // What the stop wrote: this video, finished, 0.5 s after its first frame; the files since say 0.5 s too.
  fs.writeFileSync(
    syncFile,
    JSON.stringify({ ...record, videoFile: r.video, videoFinalized: true, videoStartSource: 'ulid', offsetS: 0.5 }),
  )
  const same = run(process.execPath, [TOOL, 'mux', syncFile, '--muxed-out', path.join(dir, 'same.mp4')])
  assert.equal(same.status, 0, same.stderr)
  assert.ok(fs.existsSync(path.join(dir, 'same.mp4')))
  // The stop said 0.8 s: a file changed since (or the stop was wrong): neither is taken on trust.
  fs.writeFileSync(
    syncFile,
    JSON.stringify({ ...record, videoFile: r.video, videoFinalized: true, videoStartSource: 'ulid', offsetS: 0.8 }),
  )
  const moved = run(process.execPath, [TOOL, 'mux', syncFile, '--muxed-out', path.join(dir, 'moved.mp4')])
  assert.equal(moved.status, 1, moved.stderr)
  assert.match(moved.stderr, /⚠ .*: the offset is −300\.0 ms from the stop's, with the same timing/)
  assert.doesNotMatch(moved.stderr, /^✔ feed/m)
  assert.ok(!fs.existsSync(path.join(dir, 'moved.mp4')), 'nothing muxed')
  assert.match(moved.stdout, /ffmpeg/, 'the command is still printed')
  // A timing flag given now that differs from the stored one explains the move.
  const flagged = run(process.execPath, [TOOL, 'mux', syncFile, '--print', '--clock-offset=0.05'])
  assert.equal(flagged.status, 0, flagged.stderr)
  assert.doesNotMatch(flagged.stderr, /from the stop's/)
})

// ── Camera latency: measured by --events, kept beside the recordings, applied to the same camera ──

/**
 * One session of a camera whose frames reach TracktorLive `latencyS` after they are taken: its video
 * (`size`) in ./feed/, the WAV that recorded beside it (the audio truly `audioLateS` after the first
 * frame was taken, its stamp exact) and the sync file, whose ULID anchor is late by the latency.
 */
function cameraSession(dir, name, { latencyS, size = [W, H], seed = 11, audioLateS = 0.2, flashes = null }) {
  fs.mkdirSync(path.join(dir, 'feed'), { recursive: true })
  const takenMs = Date.now() - 60000 - Math.round(Math.random() * 1000)
  const stampedMs = takenMs + Math.round(latencyS * 1000) // the ULID: minted when the late frame arrives
  const video = path.join(dir, 'feed', `${ulidAt(stampedMs)}.mp4`)
  flashes ??= irregularTrain(seed, 10)
  makeVideo(video, flashes, 20, size)
  fs.utimesSync(video, stampedMs / 1000 + 20, stampedMs / 1000 + 20)
  const audio = path.join(dir, `${name}-audio.wav`)
  makeWav(
    audio,
    flashes.map((t) => t - audioLateS),
    22,
  )
  const syncFile = path.join(dir, `${name}-audio-sync.json`)
  fs.writeFileSync(
    syncFile,
    JSON.stringify({
      tool: 'record-audio test',
      state: 'stopped',
      feedDir: path.join(dir, 'feed'),
      audioFile: audio,
      audioFormat: 'pulse',
      audioDevice: 'test',
      audioSampleRate: RATE,
      audioChannels: 1,
      audioStartEpochS: takenMs / 1000 + audioLateS,
      audioStartSource: 'ffmpeg-input-start',
      audioDurationS: 22,
      timing: { driftFix: false },
    }),
  )
  return { video, syncFile, trueOffsetS: audioLateS, muxed: path.join(dir, `${name}-muxed.mp4`) }
}

/** `mux` of a session: muxed to s.muxed, or with --print only the command (a session muxed again). */
function muxSession(s, ...flags) {
  const where = flags.includes('--print') ? [] : ['--muxed-out', s.muxed]
  const out = run(process.execPath, [TOOL, 'mux', s.syncFile, '--json', ...where, ...flags], {
    cwd: path.dirname(s.syncFile),
  })
  assert.equal(out.status, 0, out.stderr)
  return { ...out, record: JSON.parse(out.stdout) }
}

const calibrationOf = (dir) => JSON.parse(fs.readFileSync(path.join(dir, 'record-audio-calibration.json'), 'utf8'))

test('camera latency: --events measures it (events vs anchors) and keeps it; a later session of the same camera gets it by itself, the muxed file checks at 0 ms', () => {
  const dir = tempDir()
  const first = cameraSession(dir, 'first', { latencyS: 0.136 })
  const measured = muxSession(first, '--events')
  const m = measured.record.cameraLatencyMeasured
  assert.ok(Math.abs(m.medianS - 0.136) < 0.003 && m.pairs === 10, JSON.stringify(m))
  assert.equal(measured.record.cameraLatencySource, 'events')
  assert.match(
    measured.stderr,
    /Camera latency measured: 13[5-7]\.\d ms \(spread \d\.\d ms, 10 pairs\), kept in record-audio-calibration\.json/,
  )
  const kept = calibrationOf(dir)
  assert.equal(kept.cameras.length, 1)
  assert.deepEqual(
    { ...kept.cameras[0], measurements: undefined },
    { feedId: 'feed', audioDevice: 'test', videoMode: '160x120 30 fps mpeg4', anchor: 'ulid', measurements: undefined },
  )
  assert.equal(kept.cameras[0].measurements[0].medianS, m.medianS)
  assert.ok(!Number.isNaN(Date.parse(kept.cameras[0].measurements[0].date)))

  // A later session, no flag: the kept latency is taken off; the sound lands on the picture.
  const later = cameraSession(dir, 'later', { latencyS: 0.136, seed: 12 })
  const applied = muxSession(later)
  assert.equal(applied.record.cameraLatencySource, 'calibration')
  assert.ok(Math.abs(applied.record.offsetS - later.trueOffsetS) < 0.003, String(applied.record.offsetS))
  assert.match(applied.stderr, /Camera latency 13[5-7] ± \d+ ms kept from 1 session \(record-audio-calibration\.json\)/)
  const [low, high] = applied.record.offsetBoundsS
  assert.ok(low <= later.trueOffsetS && later.trueOffsetS <= high, `${low} … ${high}`)
  assert.ok(Math.abs(check(later.muxed).fit.medianS) < 0.003)

  // --no-calibration ignores it; --camera-latency overrides it.
  const ignored = muxSession(later, '--no-calibration', '--print')
  assert.equal(ignored.record.cameraLatencySource, 'unmeasured')
  assert.ok(Math.abs(ignored.record.offsetS - (later.trueOffsetS - 0.136)) < 0.002, String(ignored.record.offsetS))
  const flagged = muxSession(later, '--camera-latency=0.1', '--print')
  assert.equal(flagged.record.cameraLatencySource, 'flag')
  assert.ok(Math.abs(flagged.record.offsetS - (later.trueOffsetS - 0.036)) < 0.002, String(flagged.record.offsetS))
})

test('camera latency: another video mode of the same feed is never given the kept one: unmeasured, said once with how to measure it, the ± raised for it', () => {
  const dir = tempDir()
  muxSession(cameraSession(dir, 'small', { latencyS: 0.136 }), '--events')
  const big = cameraSession(dir, 'big', { latencyS: 0.136, size: [320, 240], seed: 13 })
  const out = muxSession(big)
  assert.equal(out.record.cameraLatencySource, 'unmeasured')
  assert.equal(out.record.cameraLatencyS, 0)
  assert.ok(Math.abs(out.record.offsetS - (big.trueOffsetS - 0.136)) < 0.002, String(out.record.offsetS))
  assert.equal(out.stderr.match(/Camera latency unmeasured/g)?.length, 1, out.stderr)
  assert.match(out.stderr, /Camera latency unmeasured for this mode: not in the figure; measure it once with --events/)
  // The bounds hold the truth: the unmeasured latency only raises the true offset.
  const [low, high] = out.record.offsetBoundsS
  assert.ok(low <= big.trueOffsetS && big.trueOffsetS <= high, `${low} … ${high}`)
  assert.match(out.stderr, /audio starts 0\.064 s \+\d+\/−\d+ ms after the video \(ULID\)/)
  assert.equal(calibrationOf(dir).cameras.length, 1, 'nothing kept for the other mode')
})

test('camera latency: a session whose latency moved (100 ms slower) is said with ⚠, both kept, and what is applied after widens to hold both', () => {
  const dir = tempDir()
  muxSession(cameraSession(dir, 'one', { latencyS: 0.136 }), '--events')
  const slower = muxSession(cameraSession(dir, 'two', { latencyS: 0.236, seed: 14 }), '--events')
  assert.match(
    slower.stderr,
    /⚠ Camera latency 23[5-7] ms, \+(99|100|101) ms from the 13[5-7] ± \d+ ms kept \(camera changed\?\): both kept/,
  )
  const kept = calibrationOf(dir).cameras[0].measurements
  assert.equal(kept.length, 2)
  const next = cameraSession(dir, 'three', { latencyS: 0.236, seed: 15 })
  const applied = muxSession(next)
  assert.equal(applied.record.cameraLatencySource, 'calibration')
  assert.ok(applied.record.cameraLatencyUncertaintyS >= 0.05, String(applied.record.cameraLatencyUncertaintyS))
  const [low, high] = applied.record.offsetBoundsS
  assert.ok(low <= next.trueOffsetS && next.trueOffsetS <= high, `${low} … ${high}`)
  // The interval holding both, each with its spread and its session's anchors' ± (the ULID's: a frame).
  assert.match(applied.stderr, /Camera latency 18\d ± \d+ ms kept from 2 sessions/)
})

test('camera latency: events whose offset the anchors chose (a regular 3 s train, rivals 3 s either way) are no measurement: said so, nothing kept', () => {
  const dir = tempDir()
  const regular = [0.7, 3.7, 6.7, 9.7, 12.7, 15.7, 18.7]
  const out = muxSession(cameraSession(dir, 'regular', { latencyS: 0.136, flashes: regular }), '--events')
  assert.equal(out.record.events.notes[0].kind, 'tie-broken-by-anchors', JSON.stringify(out.record.events.notes))
  assert.equal(out.record.cameraLatencySource, 'unmeasured')
  assert.equal(out.record.cameraLatencyMeasured, null)
  assert.match(
    out.stderr,
    /Camera latency not measured: the anchors chose among the events' offsets \(a regular train\)/,
  )
  assert.ok(!fs.existsSync(path.join(dir, 'record-audio-calibration.json')), 'nothing kept')
})

test('camera latency: a hand-deleted calibration file leaves the camera unmeasured; the next --events starts a new one', () => {
  const dir = tempDir()
  muxSession(cameraSession(dir, 'one', { latencyS: 0.136 }), '--events')
  fs.rmSync(path.join(dir, 'record-audio-calibration.json'))
  const s = cameraSession(dir, 'two', { latencyS: 0.136, seed: 16 })
  const out = muxSession(s)
  assert.equal(out.record.cameraLatencySource, 'unmeasured')
  assert.match(out.stderr, /Camera latency unmeasured: not in the figure; measure it once with --events/)
  assert.ok(fs.existsSync(s.muxed))
  muxSession(s, '--events', '--print')
  assert.equal(calibrationOf(dir).cameras[0].measurements.length, 1)
})

test('camera latency: a malformed calibration file gets one clear line; the mux goes on, and the file is left as it was', () => {
  const dir = tempDir()
  const file = path.join(dir, 'record-audio-calibration.json')
  const text = '{ "cameras": [ { "feedId": "feed", "measurements": "136 ms" } ] }'
  fs.writeFileSync(file, text)
  const s = cameraSession(dir, 'one', { latencyS: 0.136 })
  const out = muxSession(s, '--events')
  const lines = out.stderr.split('\n').filter((line) => line.includes('record-audio-calibration.json'))
  assert.equal(lines.filter((line) => /^⚠ /.test(line)).length, 1, out.stderr)
  assert.match(
    out.stderr,
    /^⚠ record-audio-calibration\.json: cameras\[0\] has no "audioDevice" text; not used nor written/m,
  )
  assert.match(out.stderr, /Camera latency measured: .*not kept: the calibration file could not be read/)
  assert.equal(out.record.cameraLatencySource, 'events')
  assert.ok(fs.existsSync(s.muxed), 'muxed all the same')
  assert.equal(fs.readFileSync(file, 'utf8'), text, 'never overwritten')
})

// ── Issue 24's leftovers (S9, S5, S6): the events with an undecided start, and the other devices ──────

test("S9 mux --events: a regular 5 s train, an undecided stamp 2.3 s off (bound 2.4 s): the anchors' doubt follows its bound and break the tie", () => {
  const dir = tempDir()
  const videoStartMs = Date.now() - 60000
  const flashes = Array.from({ length: 8 }, (_, k) => 0.71 + 5 * k)
  const r = makeRecording(dir, flashes, flashes, 40, -0.25, videoStartMs)
  const syncFile = syncFileFor(dir, r, videoStartMs, -0.25, 2.3)
  const record = JSON.parse(fs.readFileSync(syncFile, 'utf8'))
  const undecided = { audioStartCheck: 'undecided', audioStartUncertaintyS: 2.4, audioDeliveryLatencyS: 2.4 }
  fs.writeFileSync(syncFile, JSON.stringify({ ...record, ...undecided }))
  const out = run(process.execPath, [TOOL, 'mux', syncFile, '--events', '--json', '--print'])
  assert.equal(out.status, 0, out.stderr)
  const after = JSON.parse(out.stdout)
  // ANCHOR_DOUBT_S (2 s) held neither +2.3 s nor −2.7 s: ambiguous, the anchors 2.3 s off kept.
  assert.equal(after.events.applied, true, out.stderr)
  assert.ok(Math.abs(after.offsetS - -0.25) < 0.002, `offset ${after.offsetS}, truly −0.25 s`)
  const tie = after.events.notes.find((n) => n.kind === 'tie-broken-by-anchors')
  assert.ok(tie && tie.doubtS > 2.4, JSON.stringify(after.events.notes))
  assert.match(out.stderr, /⚠ Events: the anchors were off by/)
})

/** A two-device record for mux later: the second WAV's clicks given, each device's stamp off by its error. */
function twoDevices(dir, flashes, secondClicksS, stampErrorsS, durationS = 20) {
  const videoStartMs = Date.now() - 60000
  const r = makeRecording(dir, flashes, flashes, durationS, -0.25, videoStartMs)
  const second = path.join(dir, 'feed-audio-2.wav')
  makeWav(second, secondClicksS, r.audioDurationS)
  const syncFile = syncFileFor(dir, r, videoStartMs, -0.25, stampErrorsS[0])
  const record = JSON.parse(fs.readFileSync(syncFile, 'utf8'))
  const part = (file, stampErrorS, device) => ({
    audioFile: file,
    audioFormat: 'pulse',
    audioDevice: device,
    audioSampleRate: RATE,
    audioChannels: 1,
    audioStartEpochS: videoStartMs / 1000 - 0.25 + stampErrorS,
    audioStartSource: 'ffmpeg-input-start',
    audioStartUncertaintyS: 0.003,
    audioDurationS: r.audioDurationS,
    audioFailed: null,
  })
  record.audios = [part(r.audio, stampErrorsS[0], 'test'), part(second, stampErrorsS[1], 'second')]
  fs.writeFileSync(syncFile, JSON.stringify(record))
  return { ...r, second, syncFile }
}

test("S6 mux --events, two devices: the second's card 500 ppm fast against the video: its fitted slope kept (played at that rate), its clicks on the flashes to the end", () => {
  const dir = tempDir()
  const flashes = irregularTrain(21, 12)
  // The second card counts 1.0005 s for each real second: its clicks drift 0.5 ms per second of the video.
  const t = twoDevices(
    dir,
    flashes,
    flashes.map((f) => (f + 0.25) * 1.0005),
    [0, 0],
    flashes.at(-1) + 2,
  )
  const muxed = path.join(dir, 'two.mp4')
  const out = run(process.execPath, [TOOL, 'mux', t.syncFile, '--events', '--json', '--muxed-out', muxed])
  assert.equal(out.status, 0, out.stderr)
  const record = JSON.parse(out.stdout)
  const placed = record.audioPlacements
  assert.equal(placed.length, 2)
  assert.ok(placed[1].speed, `the second stream is played at its own rate: ${JSON.stringify(placed[1])}`)
  assert.ok(Math.abs(placed[1].speed.ratio - 1.0005) < 20e-6, String(placed[1].speed.ratio))
  // Physical truth, by content: each click of the muxed second stream on its flash, the last one too.
  const clicks = clicksIn(decodeAudio(record.muxedFile, RATE, 1)).map((c) => c.index / RATE)
  const offMs = flashes.map((f) => Math.min(...clicks.map((c) => Math.abs(c - f))) * 1000)
  assert.ok(
    Math.max(...offMs) < 3,
    `the second stream's clicks off their flashes by ${offMs.map((x) => x.toFixed(1))} ms`,
  )
})

test("S6 mux --events, two devices: the second heard no click: its own anchors' offset, not moved by the first's correction; said", () => {
  const dir = tempDir()
  const flashes = irregularTrain(8, 10)
  // The first device's stamp says 0.3 s late, the second's 0.4 s early; only the first heard the clicks.
  const t = twoDevices(dir, flashes, [], [0.3, -0.4])
  const out = run(process.execPath, [TOOL, 'mux', t.syncFile, '--events', '--json', '--print'])
  assert.equal(out.status, 0, out.stderr)
  const placed = JSON.parse(out.stdout).audioPlacements
  assert.ok(Math.abs(placed[0].offsetS - -0.25) < 0.002, `the first by its clicks: ${placed[0].offsetS}`)
  // Its own stamp: −0.25 − 0.4 s; moved by the first's −0.3 s correction it would be −0.95 s.
  assert.ok(Math.abs(placed[1].offsetS - -0.65) < 1e-6, `the second by its own anchors: ${placed[1].offsetS}`)
  assert.match(out.stderr, /⚠ Events, "second": no verdict of its own: placed by its own anchors, unmoved\./)
})

test("S5 mux --events, two devices: the second device's line carries its own mark and ± (its own clicks, or none heard)", () => {
  const flashes = irregularTrain(8, 10)
  const lineOf = (stderr, device) => stderr.split('\n').find((l) => l.includes(`"${device}"  audio starts `))
  // Both heard the clicks: each placed by its own, its ± its own events' spread.
  const both = twoDevices(
    tempDir(),
    flashes,
    flashes.map((t) => t + 0.25),
    [0.3, -0.4],
  )
  const out = run(process.execPath, [TOOL, 'mux', both.syncFile, '--events', '--json', '--print'])
  assert.equal(out.status, 0, out.stderr)
  const placed = JSON.parse(out.stdout).audioPlacements
  assert.equal(placed[1].events.applied, true)
  // Never narrower than one event's timing (EVENT_TIMING_FLOOR_S, 0.5 ms).
  const spreadS = Math.max(placed[1].events.spreadMs / 1000, EVENT_TIMING_FLOOR_S)
  assert.deepEqual(placed[1].offsetBoundsS, [placed[1].offsetS - spreadS, placed[1].offsetS + spreadS])
  const line = lineOf(out.stderr, 'second')
  assert.ok(line?.includes(`${expectedPlusMinus(placed[1])} before the video (cut; events)`), `${line}\n${out.stderr}`)
  // Its own stamp has no check in this record: no ✔ (a blank mark), as its own first line would have.
  assert.match(line, /^ {2}"second"/)
  // The second heard none: its own anchors, its own ± (its start's, the video's, the unmeasured latency's), ⚠.
  const deaf = twoDevices(tempDir(), flashes, [], [0.3, -0.4])
  const alone = run(process.execPath, [TOOL, 'mux', deaf.syncFile, '--events', '--json', '--print'])
  assert.equal(alone.status, 0, alone.stderr)
  const own = JSON.parse(alone.stdout).audioPlacements[1]
  assert.equal(own.events, null)
  const [low, high] = own.offsetBoundsS
  assert.ok(low < own.offsetS - 0.003 && high > own.offsetS + 0.003, JSON.stringify(own.offsetBoundsS))
  const deafLine = lineOf(alone.stderr, 'second')
  assert.ok(deafLine?.startsWith('⚠ "second"'), `${deafLine}\n${alone.stderr}`)
  assert.ok(deafLine.includes(`${expectedPlusMinus(own)} before the video (cut; ULID)`), deafLine)
})

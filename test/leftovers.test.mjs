// Issue 24, point 6: the leftovers of the last review (S5, S6, S8, S9, S10, S12, the CSV epoch the stop
// verified), each on its pure function and, where the behaviour is end to end, on a real session (real
// ffmpeg, a private PulseAudio, the stand-ins of test/helpers.mjs).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import {
  shortVideoName,
  RECORDING_NAME,
  ANCHOR_DOUBT_S,
  MAX_DELIVERY_LATENCY_S,
  anchorDoubtFor,
  alignOnEvents,
  offsetBounds,
  videoTiming,
  chooseCsvEpoch,
  csvEpochFromMtime,
  storedCsvEpochs,
  ulidWindow,
  MTIME_TICK_S,
  videoNotes,
  checkAudioStart,
  describeStartCheck,
  PIPEWIRE_DELIVERY_S,
  PIPEWIRE_CYCLE_S,
  ENVELOPE_RESOLUTION_S,
} from '../dist/record-audio.mjs'
import {
  usePulse,
  startTool,
  startVideoRecorder,
  tempDir,
  ulidAt,
  run,
  TOOL,
  expectedPlusMinus,
  requireBinary,
  startTracktorStandIn,
} from './helpers.mjs'

const pulse = usePulse()

/** The shortest end of `ulid` that no other's ends with, at least 2 letters: the test's own rule. */
function distinctEnd(ulid, others) {
  for (let n = 2; n < 22; n++) if (!others.some((o) => o.slice(-n) === ulid.slice(-n))) return n
  return 26
}

// ── S10: short video names that cannot look alike ─────────────────────────────────────────────

test('S10 shortVideoName: alone, the ULID first four and last two; a neighbour with the same ends lengthens the end', () => {
  const a = '01JEX4R2QW7K9M3T5V8Z1B6DNP'
  const b = '01JEX4R9ZZ7K9M3T5V8Z1B0DNP' // same first four and last four letters: the old short form read alike
  assert.equal(shortVideoName(`/lab/fish/${a}.mp4`, '/lab'), `fish/01JE…NP.mp4`)
  const shortA = shortVideoName(`/lab/fish/${a}.mp4`, '/lab', [`${a}.mp4`, `${b}.mp4`])
  const shortB = shortVideoName(`/lab/fish/${b}.mp4`, '/lab', [`${a}.mp4`, `${b}.mp4`])
  assert.notEqual(shortA, shortB)
  assert.equal(shortA, `fish/01JE…${a.slice(-distinctEnd(a, [b]))}.mp4`)
  assert.equal(shortB, `fish/01JE…${b.slice(-distinctEnd(b, [a]))}.mp4`)
  // Neither shown end is the other's continuation (…6DNP and …0DNP, not …DNP and …6DNP).
  const end = (s) => s.split('…')[1].replace('.mp4', '')
  assert.ok(!end(shortA).endsWith(end(shortB)) && !end(shortB).endsWith(end(shortA)), `${shortA} ${shortB}`)
  // A ULID's case is no difference: another file with the same letters in lower case gets the whole name.
  assert.equal(shortVideoName(`/lab/fish/${a}.mp4`, '/lab', [`${a}.mp4`]), 'fish/01JE…NP.mp4', 'itself')
  const lower = shortVideoName(`/lab/fish/${a}.mp4`, '/lab', [`${a}.mp4`, `${a.toLowerCase()}.mp4`])
  assert.equal(lower, `fish/${a}.mp4`)
  const upperEnd = shortVideoName(`/lab/fish/${b}.mp4`, '/lab', [`${a.slice(0, 22).toLowerCase()}${b.slice(22)}.mp4`])
  assert.equal(upperEnd, `fish/01JE…${b.slice(-distinctEnd(b, [a.slice(0, 22) + b.slice(22)]))}.mp4`)
  // Apart in the last letter: the old form already tells them apart.
  const c = `${a.slice(0, 25)}Q`
  const d = `${a.slice(0, 25)}R`
  assert.equal(shortVideoName(`/lab/fish/${c}.mp4`, '/lab', [`${d}.mp4`]), `fish/01JE…${c.slice(-2)}.mp4`)
  // Apart only in the first letter: no end tells them apart, so the whole name.
  const e = `1${a.slice(1)}`
  assert.equal(shortVideoName(`/lab/fish/${e}.mp4`, '/lab', [`${a}.mp4`]), `fish/${e}.mp4`)
  // Not a recording's name: shown as it is.
  assert.equal(shortVideoName('/lab/fish/trial.mp4', '/lab', [`${a}.mp4`]), 'fish/trial.mp4')
})

test('S10 shortVideoName: 200 recordings of one folder, each pair with the old form alike, all shown apart', () => {
  const names = []
  for (let k = 0; k < 200; k++) {
    const ulid = ulidAt(1_800_000_000_000 + k * 60_000)
    names.push(`${ulid.slice(0, 22)}${'7K9Q'.slice(0, 2)}NP.mp4`) // every one ends …7KNP: the old ends all NP
  }
  assert.ok(names.every((n) => RECORDING_NAME.test(n)))
  const shown = names.map((n) => shortVideoName(`/lab/day/${n}`, '/lab', names))
  assert.equal(new Set(shown.map((s) => s.toUpperCase())).size, names.length, 'no two alike')
  const ends = shown.map((s) => s.split('…')[1] ?? s)
  for (const x of ends) for (const y of ends) if (x !== y) assert.ok(!x.endsWith(y), `${x} continues ${y}`)
})

test('S10 a real session: a neighbour recording whose old short name is the same; the line names the video apart', async () => {
  const cwd = tempDir()
  const video = startVideoRecorder(path.join(cwd, 'arena'))
  await sleep(300)
  const tool = startTool(['arena', '--format', 'pulse', '--device', pulse.source], { cwd, env: pulse.env })
  await tool.recording(path.join(cwd, 'arena-audio.wav'))
  await sleep(1500)
  await video.stop()
  const ulid = path.basename(video.file, '.mp4')
  // An older trial (its name sorts first: not the one chosen) with the same first four and last two letters.
  const twin = `${ulid.slice(0, 10)}${'0'.repeat(14)}${ulid.slice(24)}`
  assert.ok(twin < ulid, 'the twin is the older name')
  fs.copyFileSync(video.file, path.join(cwd, 'arena', `${twin}.mp4`))
  tool.ctrlC()
  const result = await tool.exited
  assert.equal(result.code, 0, result.stderr)
  const sync = JSON.parse(fs.readFileSync(path.join(cwd, 'arena-audio-sync.json'), 'utf8'))
  assert.equal(sync.videoFile, video.file)
  const expected = `arena/${ulid.slice(0, 4)}…${ulid.slice(-distinctEnd(ulid, [twin]))}.mp4`
  assert.ok(distinctEnd(ulid, [twin]) > 2)
  const line = result.stderr.split('\n').find((l) => l.includes('audio starts '))
  assert.ok(line?.includes(` ${expected}  `), `${expected} in: ${result.stderr}`)
  assert.ok(!result.stderr.includes(`${ulid.slice(0, 4)}…${ulid.slice(24)}.mp4`), 'not the form the twin shares')
})

// ── S9: ANCHOR_DOUBT_S follows the undecided start's bound ───────────────────────────────────

test("S9 anchorDoubtFor: ANCHOR_DOUBT_S at least; an undecided start's bound (up to 2.5 s) and the video's when wider", () => {
  assert.equal(anchorDoubtFor(null, null), ANCHOR_DOUBT_S)
  assert.equal(anchorDoubtFor(0.004, 0.033), ANCHOR_DOUBT_S)
  assert.ok(MAX_DELIVERY_LATENCY_S > ANCHOR_DOUBT_S, 'an undecided stamp can lie past the fixed doubt')
  assert.equal(anchorDoubtFor(MAX_DELIVERY_LATENCY_S, 0.033), MAX_DELIVERY_LATENCY_S + 0.033)
})

test("S9 alignOnEvents: a 5 s train, the anchors 2.3 s off: past ANCHOR_DOUBT_S ambiguous, within an undecided start's 2.4 s the tie broken", () => {
  const flashes = Array.from({ length: 8 }, (_, k) => 0.71 + 5 * k)
  const input = {
    flashesS: flashes,
    clicksS: flashes.map((t) => t + 2.3), // +2.3 s (8 pairs) and −2.7 s (7 pairs): a tie
    framePeriodS: 1 / 30,
    offsetS: 0,
    itsscale: null,
    clockRatio: 1,
    videoDurationS: 40,
  }
  const fixed = alignOnEvents(input) // the fixed 2 s: neither candidate within it
  assert.equal(fixed.summary.applied, false)
  assert.match(fixed.summary.why, /ambiguous/)
  const doubtS = anchorDoubtFor(2.4, 0.033)
  const followed = alignOnEvents({ ...input, anchorDoubtS: doubtS })
  assert.equal(followed.summary.applied, true, followed.summary.why)
  assert.ok(Math.abs(followed.offsetS - -2.3) < 1e-9, String(followed.offsetS))
  const tie = followed.fit.notes.find((n) => n.kind === 'tie-broken-by-anchors')
  assert.equal(tie?.doubtS, doubtS)
})

// ── S8: the anchors' disagreement widens the ± ─────────────────────────────────────────────────

/** A finished `durationS` video named by the ULID of videoStartMs (mtime: its last frame, + mtimeLateS), and a WAV. */
function makeTrial(dir, { videoStartMs, durationS, mtimeLateS = 0, audioLateS = -0.5 }) {
  requireBinary('ffmpeg')
  fs.mkdirSync(path.join(dir, 'feed'), { recursive: true })
  const video = path.join(dir, 'feed', `${ulidAt(videoStartMs)}.mp4`)
  const lavfi = ['-v', 'error', '-f', 'lavfi', '-i', `testsrc=size=160x120:rate=30:duration=${durationS}`]
  const made = run('ffmpeg', [...lavfi, '-c:v', 'mpeg4', '-tag:v', 'mp4v', '-f', 'mp4', video])
  assert.equal(made.status, 0, made.stderr)
  const lastFrameS = videoStartMs / 1000 + (durationS * 30 - 1) / 30 + mtimeLateS
  fs.utimesSync(video, lastFrameS, lastFrameS)
  const audio = path.join(dir, 'feed-audio.wav')
  const tone = ['-v', 'error', '-f', 'lavfi', '-i', `sine=frequency=440:duration=${durationS + 2}`, '-ar', '48000']
  assert.equal(run('ffmpeg', [...tone, '-ac', '1', audio]).status, 0)
  const syncFile = path.join(dir, 'feed-audio-sync.json')
  fs.writeFileSync(
    syncFile,
    JSON.stringify({
      tool: 'record-audio test',
      state: 'stopped',
      feedDir: path.join(dir, 'feed'),
      audioFile: audio,
      audioFormat: 'pulse',
      audioDevice: 'test',
      audioSampleRate: 48000,
      audioChannels: 1,
      audioStartEpochS: videoStartMs / 1000 + audioLateS,
      audioStartSource: 'ffmpeg-input-start',
      audioStartUncertaintyS: 0.003,
      audioDurationS: durationS + 2,
      timing: { driftFix: false },
    }),
  )
  return { video, audio, syncFile }
}

test('S8 offsetBounds: an anchor that puts the first frame D later lowers the bound by D; D earlier raises it', () => {
  const b = {
    offsetS: -0.5,
    eventsSpreadS: null,
    audioUncertaintyS: 0.003,
    videoUncertaintyS: 0.033,
    cardClockS: 0,
    latency: { source: 'calibration', uncertaintyS: 0.002 },
    framePeriodS: 1 / 30,
  }
  const [low, high] = offsetBounds(b)
  const later = offsetBounds({ ...b, anchorsApartS: [0.3] })
  assert.ok(Math.abs(later[0] - (low - 0.3)) < 1e-12 && later[1] === high, JSON.stringify(later))
  assert.ok(later[0] <= b.offsetS - 0.3, "the other anchor's offset is inside")
  const earlier = offsetBounds({ ...b, anchorsApartS: [-0.2] })
  assert.ok(earlier[0] === low && Math.abs(earlier[1] - (high + 0.2)) < 1e-12, JSON.stringify(earlier))
  const both = offsetBounds({ ...b, anchorsApartS: [0.3, -0.2, 0.1] })
  assert.ok(Math.abs(both[0] - (low - 0.3)) < 1e-12 && Math.abs(both[1] - (high + 0.2)) < 1e-12)
  assert.deepEqual(offsetBounds({ ...b, anchorsApartS: [] }), [low, high])
  // The events set the offset: their spread, whatever the anchors said.
  assert.deepEqual(offsetBounds({ ...b, eventsSpreadS: 0.002, anchorsApartS: [0.3] }), [-0.502, -0.498])
})

test("S8 videoTiming: the mtime's start 0.3 s after the ULID's is kept as the anchors' disagreement", () => {
  const ulid = 1795817200.5
  const t = videoTiming({
    ulidEpochS: ulid,
    userStartEpochS: null,
    timesync: null,
    clockOffsetS: 0,
    frames: 300,
    nominalFps: 30,
    mtimeEpochS: ulid + 299 / 30 + 0.3,
    driftFix: false,
  })
  assert.equal(t.warnings.length, 1, t.warnings.join())
  assert.equal(t.anchorsApartS.length, 1)
  assert.ok(Math.abs(t.anchorsApartS[0] - 0.3) < 1e-6, String(t.anchorsApartS))
  const agreeing = videoTiming({
    ulidEpochS: ulid,
    userStartEpochS: null,
    timesync: null,
    clockOffsetS: 0,
    frames: 300,
    nominalFps: 30,
    mtimeEpochS: ulid + 299 / 30,
    driftFix: false,
  })
  assert.deepEqual(agreeing.anchorsApartS, [])
})

test("S8 mux later, real files: the video's mtime puts its start 0.3 s after its ULID: the bounds and the line's ± hold both", () => {
  const dir = tempDir()
  const videoStartMs = Date.now() - 60000
  const t = makeTrial(dir, { videoStartMs, durationS: 6, mtimeLateS: 0.3 })
  const out = run(process.execPath, [TOOL, 'mux', t.syncFile, '--print', '--json'])
  assert.equal(out.status, 0, out.stderr)
  const r = JSON.parse(out.stdout)
  assert.equal(r.videoStartSource, 'ulid')
  assert.ok(
    r.anchorWarnings.some((w) => /puts its start 300 ms after the ULID/.test(w)),
    r.anchorWarnings.join(),
  )
  // The mtime's start: 0.3 s after the ULID's, so its offset 0.3 s lower; the bounds hold it.
  const byMtimeS = r.offsetS - 0.3
  const [low, high] = r.offsetBoundsS
  assert.ok(low <= byMtimeS && r.offsetS <= high, `${byMtimeS} outside ${low} … ${high}`)
  const line = out.stderr.split('\n').find((l) => l.includes('audio starts '))
  assert.ok(line?.includes(expectedPlusMinus(r)), `${expectedPlusMinus(r)} in ${line}`)
  assert.ok(line?.includes('anchors disagree'), line)
})

// ── Mux later: the tracking CSV's epoch the stop verified, when its mtime moved since ──────────────

test("chooseCsvEpoch: an mtime moved since the stop gives way to the epoch the stop verified from it, said; unmoved, today's", () => {
  const tInitS = 1795817200.25
  const window = ulidWindow(tInitS - 0.2, tInitS + 1.5, 1.6)
  const atStop = csvEpochFromMtime(tInitS + 60.001, 60) // what the stop took from the mtime
  const moved = chooseCsvEpoch(csvEpochFromMtime(tInitS + 60.039, 60), null, window, atStop)
  assert.equal(moved.epoch, atStop)
  assert.equal(moved.notes.length, 1)
  assert.equal(moved.notes[0].kind, 'mtime-moved-since-stop')
  assert.ok(Math.abs(moved.notes[0].apartS - 0.038) < 1e-6, String(moved.notes[0].apartS))
  // Touched far out: without the stop's epoch no witness is left (the ULID then); with it, the stop's.
  const touched = csvEpochFromMtime(tInitS + 90, 60)
  assert.equal(chooseCsvEpoch(touched, null, window).epoch, null)
  assert.equal(chooseCsvEpoch(touched, null, window, atStop).epoch, atStop)
  // Unmoved: today's mtime, nothing said.
  const same = csvEpochFromMtime(tInitS + 60.001, 60)
  assert.deepEqual(chooseCsvEpoch(same, null, window, atStop), { epoch: same, notes: [] })
  // A stop's epoch outside the ULIDs' window (a record edited by hand) is refused like any mtime.
  const wrong = { ...atStop, tInitEpochS: tInitS + 30 }
  assert.equal(chooseCsvEpoch(touched, null, window, wrong).epoch, null)
})

test("storedCsvEpochs: the mtime epochs a record's stop used, by the CSV's name, for each video; a watched one is not one", () => {
  const video = (name, source) => ({
    videoFile: `/lab/fish/${name}.mp4`,
    trackingCsvFile: `/lab/fish/${name}.csv`,
    trackingCsvEpochS: 1795817200.25,
    trackingCsvEpochSource: source,
  })
  const text = JSON.stringify({ ...video('B', 'mtime'), videos: [video('A', 'watched'), video('B', 'mtime')] })
  const found = storedCsvEpochs(text)
  assert.deepEqual([...found.keys()], ['B.csv'])
  assert.deepEqual(found.get('B.csv'), { tInitEpochS: 1795817200.25, source: 'mtime', uncertaintyS: MTIME_TICK_S })
  assert.equal(storedCsvEpochs(JSON.stringify({ audioFile: 'a.wav' })).size, 0)
})

test("mux later, real files: no feed id (no rows watched), the CSV's mtime then moved 38 ms: the stop's epoch is used and said, not the ULID", async () => {
  const cwd = tempDir()
  const tracktor = startTracktorStandIn(path.join(cwd, 'fish'), { bufferedS: 0.4 })
  await sleep(600)
  const tool = startTool(['--format', 'pulse', '--device', pulse.source], { cwd, env: pulse.env })
  await sleep(5000)
  await tracktor.stop()
  tool.ctrlC()
  const result = await tool.exited
  assert.equal(result.code, 0, result.stderr)
  const syncName = fs.readdirSync(cwd).find((f) => f.endsWith('-sync.json'))
  const syncFile = path.join(cwd, syncName)
  const sync = JSON.parse(fs.readFileSync(syncFile, 'utf8'))
  assert.equal(sync.videoStartSource, 'tracking-csv', result.stderr)
  assert.equal(sync.trackingCsvEpochSource, 'mtime', 'no feed id: no rows watched, the stop verified the mtime')
  assert.ok(Math.abs(sync.videoStartEpochS - tracktor.firstFrameEpochS) < 0.01, 'frame 0 placed within 10 ms')
  const { mtimeMs } = fs.statSync(tracktor.csvFile)
  fs.utimesSync(tracktor.csvFile, new Date(), new Date(mtimeMs + 38)) // saved again 38 ms later
  const later = run(process.execPath, [TOOL, 'mux', syncFile, '--print', '--json', '--verbose'], { cwd })
  assert.equal(later.status, 0, later.stderr)
  const again = JSON.parse(later.stdout)
  assert.equal(again.videoStartSource, 'tracking-csv', later.stderr)
  assert.equal(again.trackingCsvEpochS, sync.trackingCsvEpochS, "the stop's epoch, not today's mtime's")
  assert.ok(Math.abs(again.offsetS - sync.offsetS) < 1e-6, `${again.offsetS} vs the stop's ${sync.offsetS}`)
  assert.match(later.stderr, /mtime puts the server's start \+0\.03\d s off the one the stop verified from it/)
  assert.match(again.trackingCsvNote, /the epoch the stop verified from its mtime is used/)
  // Touched 30 s later: the same (the ULIDs alone would refuse the mtime, and the ULID would place the video).
  fs.utimesSync(tracktor.csvFile, new Date(), new Date(mtimeMs + 30000))
  const touched = JSON.parse(run(process.execPath, [TOOL, 'mux', syncFile, '--print', '--json'], { cwd }).stdout)
  assert.equal(touched.videoStartSource, 'tracking-csv')
  assert.ok(Math.abs(touched.offsetS - sync.offsetS) < 1e-6, `${touched.offsetS} vs the stop's ${sync.offsetS}`)
})

// ── S5: other devices' lines carry their own mark and ± ───────────────────────────────────────

test("S5 videoNotes: the second device's line has its own mark and ±: its start's check and its own bounds", () => {
  const v = {
    videoFile: '/lab/fish/01JEX4R2QW7K9M3T5V8Z1B6DNP.mp4',
    videoStartSource: 'tracking-csv',
    videoStartUncertaintyS: 0.004,
    videoFinalized: true,
    anchorWarnings: [],
    trackingCsvNote: null,
    events: null,
    cameraLatencySource: 'calibration',
    offsetS: -0.25,
    offsetBoundsS: [-0.259, -0.241],
    audioPlacements: [
      { audioFile: '/lab/a.wav', offsetS: -0.25, delaySamples: 0, trimSamples: 12000, speed: null },
      // its stamp undecided (a 0.8 s queue or an early stamp): its own bounds that wide
      {
        audioFile: '/lab/a-2.wav',
        offsetS: -1.05,
        delaySamples: 0,
        trimSamples: 50400,
        speed: null,
        offsetBoundsS: [-1.862, -0.238],
        events: null,
      },
    ],
  }
  const c = {
    cwd: '/lab',
    audioCheck: 'plausible',
    audioUncertaintyS: 0.003,
    devices: ['mic', 'second'],
    csvNote: null,
    csvEpochUncertaintyS: 0.001,
    cameraLatencyS: 0.135,
    codecLine: null,
    eventsAsked: false,
    eventNotes: [],
    otherAudios: [{ startCheck: 'undecided', startUncertaintyS: 0.81, startDoubtful: false }],
  }
  const lines = videoNotes(v, c).filter((n) => n.kind !== 'detail' && n.kind !== 'advice')
  const first = lines[0]
  const second = lines.find((n) => n.text.includes('"second"'))
  assert.equal(first.kind, 'ok', first.text)
  assert.match(first.text, /^✔ fish\/01JE…NP\.mp4 {2}audio starts 0\.250 s ± 9 ms before the video/)
  assert.equal(second.kind, 'warning', second.text)
  assert.match(
    second.text,
    /^⚠ "second" {2}audio starts 1\.050 s \+812\/−812 ms|^⚠ "second" {2}audio starts 1\.050 s ± 812 ms/,
  )
  // Its own start agreeing: its own mark, the same rule (✔ within a frame).
  const agreeing = {
    ...c,
    otherAudios: [{ startCheck: 'plausible', startUncertaintyS: 0.002, startDoubtful: false }],
  }
  const tight = { ...v.audioPlacements[1], offsetS: -0.252, offsetBoundsS: [-0.258, -0.246] }
  const ok = videoNotes({ ...v, audioPlacements: [v.audioPlacements[0], tight] }, agreeing).find((n) =>
    n.text.includes('"second"'),
  )
  assert.equal(ok.kind, 'ok', ok.text)
  assert.match(ok.text, /^✔ "second" {2}audio starts 0\.252 s ± 6 ms before the video \(cut; tracking CSV\)/)
  // Its own start doubtful: no ✔ for it, whatever the first's.
  const doubtful = { ...agreeing, otherAudios: [{ ...agreeing.otherAudios[0], startDoubtful: true }] }
  const no = videoNotes({ ...v, audioPlacements: [v.audioPlacements[0], tight] }, doubtful).find((n) =>
    n.text.includes('"second"'),
  )
  assert.match(no.text, /^⚠ "second"/)
})

// ── S12: PipeWire's half-cycle bias taken off the audio start, its ± honest ───────────────────────

test('S12 checkAudioStart on PipeWire: placed by the envelope, half a graph cycle earlier; its ± still holds the envelope and the delivery before it', () => {
  const envelopeEpochS = 1795817200.125
  const envelope = { epochS: envelopeEpochS, deliveries: 150, spanS: 3 }
  const halfS = PIPEWIRE_CYCLE_S / 2
  assert.ok(Math.abs(PIPEWIRE_CYCLE_S - 0.010667) < 1e-6, 'the cycle measured here: 512 frames at 48 kHz')
  const cases = {
    'stamp-late': { epochS: envelopeEpochS + 0.009, source: 'ffmpeg-input-start' },
    'no-stamp': { epochS: envelopeEpochS - 0.1, source: 'spawn-time' },
  }
  for (const [kind, stamp] of Object.entries(cases)) {
    const c = checkAudioStart(stamp, envelope, PIPEWIRE_DELIVERY_S, halfS)
    assert.equal(c.kind, kind)
    assert.equal(c.start.source, 'arrival-envelope')
    assert.ok(Math.abs(c.start.epochS - (envelopeEpochS - halfS)) < 1e-9, `${kind}: ${c.start.epochS}`)
    assert.equal(c.envelopeEpochS, envelopeEpochS, 'the envelope itself is kept as it was seen')
    // The truth lies from the envelope (+ its resolution) to the delivery before it: both ends within the ±.
    const [earliest, latest] = [
      envelopeEpochS - PIPEWIRE_DELIVERY_S - ENVELOPE_RESOLUTION_S,
      envelopeEpochS + ENVELOPE_RESOLUTION_S,
    ]
    assert.ok(c.start.epochS - c.uncertaintyS <= earliest + 1e-9 && latest <= c.start.epochS + c.uncertaintyS + 1e-9)
    // … and no wider than that: the bias taken off narrows it by as much.
    const stated = checkAudioStart(stamp, envelope, PIPEWIRE_DELIVERY_S)
    assert.ok(Math.abs(stated.uncertaintyS - halfS - c.uncertaintyS) < 1e-9, `${stated.uncertaintyS} ${c.uncertaintyS}`)
    assert.match(describeStartCheck(c), /less 5 ms \(half a PipeWire graph cycle, their average wait\), ± 31 ms\.$/)
  }
  // A plausible stamp is used as it is: the bias is the envelope's, not the stamp's.
  const stamp = { epochS: envelopeEpochS - 0.02, source: 'ffmpeg-input-start' }
  const plausible = checkAudioStart(stamp, envelope, PIPEWIRE_DELIVERY_S, halfS)
  assert.equal(plausible.kind, 'plausible')
  assert.deepEqual(plausible.start, stamp)
  assert.equal(plausible.uncertaintyS, checkAudioStart(stamp, envelope, PIPEWIRE_DELIVERY_S).uncertaintyS)
  // PulseAudio: no bias, the envelope itself.
  const pulse = checkAudioStart(cases['stamp-late'], envelope)
  assert.equal(pulse.start.epochS, envelopeEpochS)
  assert.equal(pulse.envelopeBiasS, undefined)
})

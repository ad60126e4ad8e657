// The tracking CSV's wall-clock time (issue 15 §3): its mtime cross-checked against the ULIDs and the
// rows seen while recording, and the epoch seen while recording kept in the sync record for `mux` later.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { usePulse, startTool, tempDir, run, TOOL, startTracktorStandIn } from './helpers.mjs'

test("CSV epoch: the ULIDs' window, and an mtime outside it or off the rows seen while recording is not used", async () => {
  const { ulidWindow, chooseCsvEpoch, csvEpochFromMtime, describeCsvEpochNote, MTIME_TICK_S, ULID_TICK_S } =
    await import('../dist/record-audio.mjs')
  // The CSV's ULID at 100.000, t_init at 100.002, the camera opened by 100.900 (the video's ULID),
  // the first row stamped 1.0 s after t_init: t_init lies in [max(100, 100.9 − 1.0), 100.9].
  const csvUlidS = 1795817100
  const window = ulidWindow(csvUlidS, csvUlidS + 0.9, 1.0)
  assert.ok(Math.abs(window.earliestS - (csvUlidS - ULID_TICK_S)) < 1e-6)
  assert.ok(Math.abs(window.latestS - (csvUlidS + 0.9 + ULID_TICK_S)) < 1e-6)
  assert.ok(Math.abs(ulidWindow(csvUlidS, csvUlidS + 0.9, 0.5).earliestS - (csvUlidS + 0.4 - ULID_TICK_S)) < 1e-6)

  const tInitS = csvUlidS + 0.002
  const lastTimeS = 60
  const mtime = (movedS) => csvEpochFromMtime(tInitS + lastTimeS + movedS, lastTimeS)
  const watched = { tInitEpochS: tInitS + 0.0008, source: 'watched', uncertaintyS: 0.0006, rowPeriodS: 1 / 30 }
  const sharp = (m) => chooseCsvEpoch(m, watched, window)

  // Untouched: both agree, the sharper one is used, nothing said.
  assert.deepEqual(sharp(mtime(0.003)), { epoch: watched, notes: [] })
  assert.deepEqual(chooseCsvEpoch(mtime(0.003), null, window).notes, [])
  // Touched 30 s later: outside the ULIDs' window, and far off the rows seen.
  const touched = chooseCsvEpoch(mtime(30), null, window)
  assert.equal(touched.epoch, null)
  assert.equal(touched.notes[0].kind, 'mtime-off-ulids')
  assert.ok(Math.abs(touched.notes[0].apartS - (tInitS + 30 - window.latestS)) < 1e-6)
  assert.match(describeCsvEpochNote(touched.notes[0], 'X.csv'), /X\.csv's mtime .* \+29\.1\d\d s outside/)
  assert.deepEqual(sharp(mtime(30)).epoch, watched)
  // Inside the ULIDs' window but past the rows seen (a bound t_init never exceeds by more than a
  // tick and Date.now()'s millisecond): only the second witness sees it.
  const later = sharp(mtime(0.5))
  assert.deepEqual(
    later.notes.map((n) => n.kind),
    ['mtime-off-watched'],
  )
  assert.deepEqual(later.epoch, watched)
  const slack = ULID_TICK_S + MTIME_TICK_S
  assert.deepEqual(sharp(mtime(0.0008 + slack - 1e-4)).notes, [], 'a tick after the bound is fine')
  assert.equal(sharp(mtime(0.0008 + slack + 1e-4)).notes.length, 1)
  // Earlier than the rows seen by more than a row's period: moved back (set by hand, or another copy).
  const wide = { earliestS: csvUlidS - 1, latestS: window.latestS } // a server constructed a second before run()
  assert.equal(chooseCsvEpoch(mtime(-0.2), watched, wide).notes[0].kind, 'mtime-off-watched')
  // A sharper mtime than the rows seen (few looks): it is used when it agrees.
  const fewLooks = { ...watched, uncertaintyS: 0.011 }
  assert.equal(chooseCsvEpoch(mtime(0), fewLooks, window).epoch.source, 'mtime')
  // Rows seen outside the window (the clock stepped): not used; the mtime still is.
  const stepped = chooseCsvEpoch(mtime(0), { ...watched, tInitEpochS: tInitS - 5 }, window)
  assert.equal(stepped.notes[0].kind, 'watched-off-ulids')
  assert.equal(stepped.epoch.source, 'mtime')
  // A look's bound may lie up to a row's period above t_init, so past the window's end by that much.
  const lateBound = { ...watched, tInitEpochS: window.latestS + 0.02 }
  assert.deepEqual(
    chooseCsvEpoch(csvEpochFromMtime(window.latestS + lastTimeS, lastTimeS), lateBound, window).notes,
    [],
  )
  assert.equal(chooseCsvEpoch(mtime(0), { ...watched, tInitEpochS: window.latestS + 0.04 }, window).notes.length, 1)
})

test('sync record: the audio span, the doubtful start, the CSV epochs seen and the videos read back (mux later keeps them)', async () => {
  const { newSyncRecord, parseSyncRecord } = await import('../dist/record-audio.mjs')
  const record = newSyncRecord({
    tool: 'record-audio test',
    feedDir: '/lab/fish',
    audioFile: '/lab/fish-audio.wav',
    audioFormat: 'pulse',
    audioDevice: 'default',
    audioSampleRate: 48000,
    audioChannels: 1,
    timing: { timesyncFile: null, videoStartEpochS: null, clockOffsetS: 0, cameraLatencyS: 0, driftFix: true },
  })
  const watched = [{ file: '/lab/fish/01ABC.csv', tInitEpochS: 1795817200.5, uncertaintyS: 0.0004, rowPeriodS: 0.0333 }]
  const stored = {
    ...record,
    audioStartEpochS: 1795817200.25,
    audioWallSpanS: 12.5,
    audioStartDoubtful: true,
    trackingCsvWatched: watched,
    videoFile: '/lab/fish/A.mp4',
    videos: [{ videoFile: '/lab/fish/A.mp4' }, { videoFile: '/lab/fish/B.mp4' }],
  }
  const back = parseSyncRecord(JSON.stringify(stored))
  assert.equal(back.audioWallSpanS, 12.5)
  assert.equal(back.audioStartDoubtful, true)
  assert.deepEqual(back.trackingCsvWatched, watched)
  assert.equal(back.videoFile, '/lab/fish/A.mp4')
  assert.deepEqual(
    back.videos.map((v) => v.videoFile),
    ['/lab/fish/A.mp4', '/lab/fish/B.mp4'],
  )
  const old = parseSyncRecord(JSON.stringify({ audioFile: 'a.wav', audioSampleRate: 48000 }))
  assert.equal(old.audioStartDoubtful, null)
  assert.equal(old.trackingCsvWatched, null)
  assert.equal(old.videos, null)
})

const pulse = usePulse()

test("mux later after the tracking CSV was touched 30 s later: the epoch seen while recording gives the stop's offset", async () => {
  const cwd = tempDir()
  const tracktor = startTracktorStandIn(path.join(cwd, 'fish'), { bufferedS: 0.4 })
  await sleep(600)
  const tool = startTool(['fish', '--format', 'pulse', '--device', pulse.source], { cwd, env: pulse.env })
  await tool.recording(path.join(cwd, 'fish-audio.wav'))
  await sleep(6000)
  await tracktor.stop()
  tool.ctrlC()
  const result = await tool.exited
  assert.equal(result.code, 0, result.stderr)
  const syncFile = path.join(cwd, 'fish-audio-sync.json')
  const sync = JSON.parse(fs.readFileSync(syncFile, 'utf8'))
  assert.equal(sync.videoStartSource, 'tracking-csv', result.stderr)
  assert.equal(sync.trackingCsvWatched.length, 1)
  assert.equal(path.basename(sync.trackingCsvWatched[0].file), path.basename(tracktor.csvFile))
  assert.ok(Math.abs(sync.videoStartEpochS - tracktor.firstFrameEpochS) < 0.01, 'frame 0 placed within 10 ms')

  const { mtimeMs } = fs.statSync(tracktor.csvFile)
  fs.utimesSync(tracktor.csvFile, new Date(), new Date(mtimeMs + 30000)) // `touch`, 30 s later
  const later = run(process.execPath, [TOOL, 'mux', syncFile, '--print', '--json', '--verbose'], { cwd })
  assert.equal(later.status, 0, later.stderr)
  const again = JSON.parse(later.stdout)
  const apartMs = (again.offsetS - sync.offsetS) * 1000
  assert.ok(Math.abs(apartMs) < 1, `mux later is ${apartMs.toFixed(3)} ms off the stop's offset: ${later.stderr}`)
  assert.equal(again.trackingCsvEpochSource, 'watched')
  assert.equal(typeof sync.audioStartDoubtful, 'boolean', 'the stop checked the audio span')
  assert.equal(again.audioStartDoubtful, sync.audioStartDoubtful, "mux later's --json keeps the doubtful-start flag")
  assert.equal(again.audioWallSpanS, sync.audioWallSpanS)
  assert.match(later.stderr, /⚠ Frame clock: .*\.csv's mtime puts the server's start \+\d+\.\d+ s outside what its/)
  assert.match(again.trackingCsvNote, /the mtime is not used/)

  // A record without the epochs seen (one from before they were kept): the ULIDs alone refuse the
  // touched mtime, the CSV is not used, and the summary says why; the start falls back to the ULID.
  fs.writeFileSync(syncFile, JSON.stringify({ ...sync, trackingCsvWatched: undefined }))
  const blind = run(process.execPath, [TOOL, 'mux', syncFile, '--print', '--json', '--verbose'], { cwd })
  assert.equal(blind.status, 0, blind.stderr)
  const fallback = JSON.parse(blind.stdout)
  assert.equal(fallback.videoStartSource, 'ulid')
  assert.equal(fallback.trackingCsvFile, null)
  assert.match(
    blind.stderr,
    /⚠ Frame clock: .*mtime puts the server's start \+\d+\.\d+ s outside what its and the video's ULIDs allow/,
  )
})

// `mux` later muxes the recording's own video (issue 15 §4): not the newest in the feed now, and never a
// video the audio does not overlap at all. Real PulseAudio (null sink, a tone), real mp4 files.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { TOOL, run, usePulse, startTool, startVideoRecorder, tempDir } from './helpers.mjs'

test('no overlap: both spans in one line; a partial overlap, however small, is no refusal', async () => {
  const { noOverlapLine } = await import('../dist/record-audio.mjs')
  const audio = { startEpochS: 1795817200, endEpochS: 1795817260 }
  const at = (s) => new Date(s * 1000).toISOString()
  assert.equal(noOverlapLine(audio, { file: 'v.mp4', startEpochS: 1795817259.9, endEpochS: 1795817300 }), null)
  assert.equal(noOverlapLine(audio, { file: 'v.mp4', startEpochS: 1795817100, endEpochS: 1795817200.1 }), null)
  assert.equal(
    noOverlapLine(audio, { file: 'next/v.mp4', startEpochS: 1795820200, endEpochS: 1795820230 }),
    `the audio (${at(1795817200)} → ${at(1795817260)}) and the video next/v.mp4` +
      ` (${at(1795820200)} → ${at(1795820230)}) do not overlap in time: give the recording's video with --video,` +
      " or, if this is it and its computer's clock is off, that difference with --clock-offset (or its first frame" +
      ' with --video-start)',
  )
  assert.notEqual(
    noOverlapLine(audio, { file: 'v.mp4', startEpochS: 1795817260, endEpochS: 1795817290 }),
    null,
    'touching ends share no instant',
  )
})

const pulse = usePulse()

/** Records `feed` while `during` runs (it starts and stops the trials), then ctrl-c. */
async function recordAcross(cwd, feed, args, during) {
  const tool = startTool([feed, '--format', 'pulse', '--device', pulse.source, ...args], { cwd, env: pulse.env })
  await tool.recording(path.join(cwd, `${feed}-audio.wav`))
  await during()
  tool.ctrlC()
  const result = await tool.exited
  assert.equal(result.code, 0, result.stderr)
  const syncFile = path.join(cwd, `${feed}-audio-sync.json`)
  return { syncFile, sync: JSON.parse(fs.readFileSync(syncFile, 'utf8')) }
}

async function trial(feedDir, seconds) {
  const video = startVideoRecorder(feedDir)
  await sleep(seconds * 1000)
  await video.stop()
  return video
}

const isoSpan = (startS, endS) => `${new Date(startS * 1000).toISOString()} → ${new Date(endS * 1000).toISOString()}`

test("mux later after the next trial: the recording's own video, the same offset; the next trial's is refused in one line, exit 1, no command", async () => {
  const cwd = tempDir()
  const feedDir = path.join(cwd, 'tank')
  const own = startVideoRecorder(feedDir)
  await sleep(300)
  const { syncFile, sync } = await recordAcross(cwd, 'tank', [], async () => {
    await sleep(1500)
    await own.stop()
    await sleep(500) // the audio runs on past the video: a partial overlap
  })
  assert.equal(sync.videoFile, own.file)
  assert.ok(sync.silenceBeforeS > 0.2, `the audio starts after the video: ${sync.silenceBeforeS} s of silence`)
  await sleep(1000)
  const next = await trial(feedDir, 1.5) // the next trial, newest in the feed now

  const later = run(process.execPath, [TOOL, 'mux', syncFile, '--print', '--json'], { cwd })
  assert.equal(later.status, 0, later.stderr)
  const again = JSON.parse(later.stdout)
  assert.equal(again.videoFile, own.file, 'not the newest in the feed now')
  assert.ok(Math.abs(again.offsetS - sync.offsetS) < 1e-9, `${again.offsetS} vs ${sync.offsetS}`)
  assert.equal(again.silenceBeforeS, sync.silenceBeforeS, 'a partial overlap keeps its silence padding')
  assert.match(later.stderr, /The recording's own video \(give another with --video\)/)

  // The next trial named with --video shares no instant with the audio: refused.
  const refused = run(process.execPath, [TOOL, 'mux', syncFile, '--print', '--video', next.file], { cwd })
  assert.equal(refused.status, 1, refused.stderr)
  assert.equal(refused.stdout, '', 'no command printed')
  // One line of its own (the recording's doubt about its audio start, if it had one, is said again first).
  const lines = refused.stderr
    .trim()
    .split('\n')
    .filter((line) => !/start stamp|no start time/.test(line))
  assert.equal(lines.length, 1, refused.stderr)
  const audioEndS = sync.audioStartEpochS + sync.audioDurationS / sync.audioClockRatio
  assert.ok(lines[0].includes(`the audio (${isoSpan(sync.audioStartEpochS, audioEndS)})`), lines[0])
  const nextStartS = next.ulidEpochMs / 1000
  assert.match(lines[0], new RegExp(`the video ${next.file} \\(${new Date(nextStartS * 1000).toISOString()} → `))
  assert.match(lines[0], /do not overlap in time: give the recording's video with --video/)

  // The recording's video moved away: said in one line, nothing else picked in its place.
  fs.renameSync(own.file, `${own.file}.moved`)
  const gone = run(process.execPath, [TOOL, 'mux', syncFile, '--print'], { cwd })
  assert.equal(gone.status, 2, gone.stderr)
  assert.match(gone.stderr, /the recording's video .* is not there any more: put it back, or give another with --video/)
  assert.equal(gone.stdout, '')
})

test("mux later --all-videos: the recording's own trials, not the one after it; a stop with no video found still looks in the feed", async () => {
  const cwd = tempDir()
  const feedDir = path.join(cwd, 'day')
  const trials = []
  const { syncFile, sync } = await recordAcross(cwd, 'day', ['--all-videos'], async () => {
    await sleep(300)
    trials.push(await trial(feedDir, 1.2))
    await sleep(300)
    trials.push(await trial(feedDir, 1.2))
    await sleep(300)
  })
  assert.deepEqual(
    sync.videos.map((v) => v.videoFile),
    trials.map((t) => t.file),
  )
  await sleep(500)
  await trial(feedDir, 1.2) // after the audio
  const later = run(process.execPath, [TOOL, 'mux', syncFile, '--print', '--json'], { cwd })
  assert.equal(later.status, 0, later.stderr)
  const again = JSON.parse(later.stdout)
  assert.deepEqual(
    again.videos.map((v) => [v.videoFile, v.offsetS]),
    sync.videos.map((v) => [v.videoFile, v.offsetS]),
  )

  // A recording made before its video existed (none found at the stop): mux later looks in the feed,
  // and the newest there now, which does not overlap the audio, is refused rather than muxed.
  const cwd2 = tempDir()
  const { syncFile: early } = await recordAcross(cwd2, 'pond', [], () => sleep(1200))
  await sleep(300)
  await trial(path.join(cwd2, 'pond'), 1.2)
  const none = run(process.execPath, [TOOL, 'mux', early, '--print'], { cwd: cwd2 })
  assert.equal(none.status, 1, none.stderr)
  assert.equal(none.stdout, '')
  assert.match(none.stderr, /do not overlap in time/)
})

test("mux later's witness: the stop's offset per video finished then (an unfinished one had no frame clock yet)", async () => {
  const { storedOffsets } = await import('../dist/record-audio.mjs')
  const stop = JSON.stringify({
    videoFile: '/lab/c.mp4',
    offsetS: 4,
    videoFinalized: false,
    videos: [
      {
        videoFile: '/lab/a.mp4',
        offsetS: -2,
        videoFinalized: true,
        videoStartSource: 'tracking-csv',
        cameraLatencyS: 0.136,
      },
      { videoFile: '/lab/b.mp4', offsetS: 1.5, videoFinalized: true },
      { videoFile: '/lab/c.mp4', offsetS: 4, videoFinalized: false },
    ],
  })
  assert.deepEqual(
    [...storedOffsets(stop)],
    [
      // the latency taken off then: one kept or measured since explains a move
      ['/lab/a.mp4', { offsetS: -2, source: 'tracking-csv', cameraLatencyS: 0.136 }],
      ['/lab/b.mp4', { offsetS: 1.5, source: null, cameraLatencyS: null }],
    ],
  )
  assert.equal(storedOffsets(JSON.stringify({ audioFile: 'x.wav' })).size, 0)
})

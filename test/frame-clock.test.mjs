// The frame clock (issue 15 §2): the supporting line of TracktorLive's read times from below, whatever
// the length of the buffered start, and a refusal when no steady rate near the nominal one is there.
import { test } from 'node:test'
import assert from 'node:assert/strict'

const T_INIT = 1795817200

/**
 * A camera taking frame k at takenS + k / fps; the frames it buffered before the first read come out
 * `burstGapS` apart from `firstReadS` on, until the reads catch up; from then on each frame is read
 * `latencyS` (plus `jitterS(k)`) after it was taken.
 */
function reads({ frames, fps, takenS, firstReadS, burstGapS = 0.002, latencyS = 0.004, jitterS = () => 0 }) {
  return Array.from({ length: frames }, (_, k) =>
    Math.max(firstReadS + k * burstGapS, takenS + k / fps + latencyS + jitterS(k)),
  )
}

/** The first read time at which exactly `buffered` frames come from the buffer (read before they would be on time). */
function firstReadFor(buffered, { fps, takenS, burstGapS = 0.002, latencyS = 0.004 }) {
  // frame k is buffered while firstRead + k gap > taken + k / fps + latency: between the last two bounds
  const bound = (k) => takenS + latencyS + k * (1 / fps - burstGapS)
  return (bound(buffered - 1) + bound(buffered)) / 2
}

for (const buffered of [39, 48]) {
  test(`frame clock: ${buffered} of 60 frames buffered (read 2 ms apart), the rest 4 ms after capture → frame 0 within 10 ms, no retiming`, async () => {
    const { frameClock, videoTiming } = await import('../dist/record-audio.mjs')
    const construction = { fps: 30, takenS: 2 }
    const firstReadS = firstReadFor(buffered, construction)
    const times = reads({ frames: 60, ...construction, firstReadS })
    const late = times.filter((t, k) => t > construction.takenS + k / 30 + 0.004 + 1e-9).length
    assert.equal(late, buffered, 'the construction buffers that many frames')
    const clock = frameClock(times, T_INIT, 30)
    assert.ok(!('refused' in clock), JSON.stringify(clock))
    const frame0EpochS = T_INIT + construction.takenS
    const errorMs = (clock.firstFrameEpochS - frame0EpochS) * 1000
    assert.ok(Math.abs(errorMs) <= 10, `frame 0 ${errorMs.toFixed(1)} ms off`)
    // The envelope is the camera's line plus the shortest delay to the stamp (4 ms here), exactly.
    assert.ok(Math.abs(errorMs - 4) < 1e-3, `${errorMs} ms: the shortest delay is 4 ms`)
    assert.ok(Math.abs(clock.fps - 30) < 1e-6, String(clock.fps))
    assert.ok(Math.abs(clock.firstReadLateS - (firstReadS - construction.takenS - 0.004)) < 1e-9)
    const onLine = (k) => times[k] - (construction.takenS + 0.004 + k / 30) > 1 / 60
    assert.equal(
      clock.bufferedFrames,
      Array.from({ length: 60 }, (_, k) => k).findIndex((k) => !onLine(k)),
    )
    const timing = videoTiming({
      ulidEpochS: T_INIT + 1,
      userStartEpochS: null,
      timesync: null,
      clockOffsetS: 0,
      frames: 60,
      nominalFps: 30,
      mtimeEpochS: T_INIT + times[59],
      driftFix: true,
      frameClock: { ...clock, epoch: { tInitEpochS: T_INIT, source: 'watched', uncertaintyS: 0.001 } },
    })
    assert.equal(timing.source, 'tracking-csv')
    assert.equal(timing.itsscale, null, timing.driftReason)
    assert.deepEqual(timing.warnings, [])
  })
}

test('frame clock: a camera 1.5 % fast under a 70 % burst and 0–12 ms of tracking jitter → its rate and frame 0', async () => {
  const { frameClock } = await import('../dist/record-audio.mjs')
  const fps = 30 * 1.015
  const construction = { fps, takenS: 3, latencyS: 0.004 }
  const frames = 600
  const firstReadS = firstReadFor(420, construction)
  let seed = 7
  const jitterS = () => {
    seed = (seed * 48271) % 2147483647
    return (seed % 13) / 1000 // 0–12 ms, some reads right on the 4 ms floor
  }
  const times = reads({ frames, ...construction, firstReadS, jitterS })
  const clock = frameClock(times, T_INIT, 30)
  assert.ok(!('refused' in clock))
  // The lowest reads sit on the 4 ms floor: the line through two of them is the camera's.
  const floorK = times.map((t, k) => (Math.abs(t - (3 + k / fps + 0.004)) < 1e-9 ? k : -1)).filter((k) => k >= 420)
  assert.ok(floorK.length >= 2, 'the construction has reads on the floor')
  assert.ok(Math.abs(clock.fps - fps) < 1e-6, `${clock.fps} fps, the camera ${fps}`)
  const errorMs = (clock.firstFrameEpochS - (T_INIT + 3)) * 1000
  assert.ok(Math.abs(errorMs - 4) < 1e-3, `frame 0 ${errorMs.toFixed(3)} ms after capture, the floor is 4 ms`)
})

test('frame clock: no steady rate within 5 % of the nominal one (a camera at half rate) is refused, and nothing is retimed', async () => {
  const { frameClock, videoTiming, describeRefusedClock, MAX_CAMERA_RATE_ERROR } = await import(
    '../dist/record-audio.mjs'
  )
  assert.equal(MAX_CAMERA_RATE_ERROR, 0.05)
  // A camera at 15 fps in a 30 fps video, after a burst of 10 frames.
  const times = reads({ frames: 60, fps: 15, takenS: 1, firstReadS: firstReadFor(10, { fps: 15, takenS: 1 }) })
  const refused = frameClock(times, T_INIT, 30)
  assert.equal(refused.refused, 'implausible-rate')
  assert.ok(Math.abs(refused.longestRunFps - 15) < 1e-6, String(refused.longestRunFps))
  assert.match(describeRefusedClock(refused, 'the tracking CSV'), /within 5 % of the nominal 30 fps.*15\.00 fps/)
  // Just inside the bound: a camera 4.9 % slow is a clock; 5.1 % slow is not.
  for (const [ratio, ok] of [
    [0.951, true],
    [0.949, false],
  ]) {
    const t = reads({ frames: 60, fps: 30 * ratio, takenS: 1, firstReadS: 1 })
    assert.equal(!('refused' in frameClock(t, T_INIT, 30)), ok, `${ratio}`)
  }
  // Refused: the start comes from the ULID, and the mtime's span (3 % long here) retimes nothing.
  const timing = videoTiming({
    ulidEpochS: T_INIT,
    userStartEpochS: null,
    timesync: null,
    clockOffsetS: 0,
    frames: 600,
    nominalFps: 30,
    mtimeEpochS: T_INIT + (599 / 30) * 1.03,
    driftFix: true,
    frameClock: null,
    frameClockRefused: refused,
  })
  assert.equal(timing.source, 'ulid')
  assert.equal(timing.itsscale, null)
  assert.match(timing.driftReason, /no steady rate/)
  assert.ok(
    timing.warnings.some((w) => /the tracking CSV shows no steady frame rate/.test(w)),
    timing.warnings.join(),
  )
  // The same refusal from the timesync file's rows.
  const rows = Float64Array.from(times, (t) => T_INIT + t)
  const fromTimesync = videoTiming({
    ulidEpochS: T_INIT,
    userStartEpochS: null,
    timesync: { firstS: rows[0], lastS: rows[59], rows: 60, timesS: rows },
    clockOffsetS: 0,
    frames: 61,
    nominalFps: 30,
    mtimeEpochS: null,
    driftFix: true,
  })
  assert.equal(fromTimesync.clock, null)
  assert.equal(fromTimesync.itsscale, null)
  assert.ok(fromTimesync.warnings.some((w) => /timesync file shows no steady/.test(w)))
})

/**
 * TracktorLive falling behind a 30 fps camera (as the real one does under load): frame 0 read 0.3 s
 * late, then 45 ms a frame for 150 frames, then a burst 2 ms apart until it reads live again, then
 * `onTime` frames read 4 ms after capture.
 */
function fallingBehind(onTime) {
  const takenS = (k) => 1 + k / 30
  const times = [takenS(0) + 0.3]
  for (let k = 1; k < 150; k++) times.push(Math.max(times[k - 1] + 0.045, takenS(k) + 0.004))
  for (let k = 150; times[k - 1] - takenS(k - 1) > 0.004 + 1e-9; k++)
    times.push(Math.max(times[k - 1] + 0.002, takenS(k) + 0.004))
  const caughtUp = times.length
  for (let k = caughtUp; k < caughtUp + onTime; k++) times.push(takenS(k) + 0.004)
  return times
}

test('frame clock: a reader that falls behind its camera for the whole run is refused (its envelope touches a handful of points); once it reads live for 10+ frames, the camera is found', async () => {
  const { frameClock, MIN_STEADY_FRAMES } = await import('../dist/record-audio.mjs')
  const lagging = fallingBehind(4)
  const refused = frameClock(lagging, T_INIT, 30)
  assert.equal(refused.refused, 'implausible-rate', JSON.stringify(refused))
  assert.ok(refused.onLineFrames < MIN_STEADY_FRAMES, String(refused.onLineFrames))
  // The first read to the last is ~4 % faster than the camera: within the rate bound, yet no clock.
  const chordFps = (lagging.length - 1) / (lagging.at(-1) - lagging[0])
  assert.ok(Math.abs(chordFps / 30 - 1) < 0.05, String(chordFps))

  const caughtUp = fallingBehind(30)
  const clock = frameClock(caughtUp, T_INIT, 30)
  assert.ok(!('refused' in clock), JSON.stringify(clock))
  assert.ok(Math.abs(clock.fps - 30) < 1e-6, String(clock.fps))
  const errorMs = (clock.firstFrameEpochS - (T_INIT + 1)) * 1000
  assert.ok(Math.abs(errorMs - 4) < 1e-3, `frame 0 ${errorMs.toFixed(3)} ms after capture, the floor is 4 ms`)
})

test('a frame clock more than 0.5 % off its nominal rate is doubtful: said, and the video gets no ✔ unless the events witness it', async () => {
  const { frameRateDoubtful, videoMark, FRAME_RATE_DOUBT } = await import('../dist/record-audio.mjs')
  const video = (cameraFps, events = null) => ({
    cameraFps,
    videoNominalFps: 30,
    anchorWarnings: [],
    trackingCsvNote: null,
    videoStartSource: 'tracking-csv',
    videoFinalized: true,
    events,
    cameraLatencySource: 'calibration', // an unmeasured camera gets no ✔ whatever its rate (summary.test)
  })
  // A crystal is within 0.01 %: 29.997 fps is a camera; 28.8 fps (4 % slow) is dropped frames or a slow reader.
  assert.equal(frameRateDoubtful(video(29.997)), false)
  assert.equal(frameRateDoubtful(video(30 * (1 + FRAME_RATE_DOUBT * 1.1))), true)
  assert.equal(frameRateDoubtful(video(28.8)), true)
  const c = { audioCheck: 'plausible', eventsAsked: false }
  assert.equal(videoMark(video(29.997), c), '✔')
  assert.equal(videoMark(video(28.8), c), '⚠')
  assert.equal(videoMark(video(28.8, { applied: true }), { ...c, eventsAsked: true }), '✔')
})

// Several microphones, each on its own clock: the mux plan's arithmetic (pure), and two pipe sources
// on a real PulseAudio server, one running 1000 ppm fast, muxed and checked against when each click
// was written.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { SPEED_MAX_UPSAMPLE, muxPlan, speedFor } from '../dist/record-audio.mjs'
import {
  decodeAudio,
  ffmpegPidsIn,
  startFastSource,
  startTool,
  startVideoRecorder,
  tempDir,
  usePulse,
} from './helpers.mjs'

/**
 * Where a plan puts sample n of a stream, in seconds of the muxed file, read from the plan's own
 * numbers (not its filter's text): played P/Q times faster, then delayed or trimmed at its rate.
 */
function placedS(place, sampleRate, n) {
  const speed = place.speed ? place.speed.asHz / place.speed.upHz : 1
  return n / (sampleRate * speed) + (place.delaySamples - place.trimSamples) / sampleRate
}

/**
 * The truth from the construction: a card at `ratio` × its nominal rate captured sample n at
 * start + n / (rate × ratio) wall seconds; the muxed file's timeline is the first card's, so a wall
 * time t after the video's first frame is at t × (the first card's ratio) in it, as is the video.
 */
function truthS({ offsetS, sampleRate, clockRatio }, timelineRatio, n) {
  return (offsetS + n / (sampleRate * clockRatio)) * timelineRatio
}

const base = {
  audioFile: 'a.wav',
  videoFile: 'v.mp4',
  muxedFile: 'out.mp4',
  sampleRate: 48000,
  channels: 1,
  videoDurationS: 3600,
  itsscale: null,
  title: 'first',
}

test('speedFor: 1000 ppm at 48 kHz is asetrate 48048 exactly; on time is untouched', () => {
  assert.deepEqual(speedFor(1.001, 48000), { upHz: 48000, asHz: 48048, ratio: 1.001, errorPpm: 0 })
  assert.equal(speedFor(1, 48000), null)
  assert.equal(speedFor(1, 44100), null)
})

test('speedFor: an odd ratio lands within 0.01 ppm through a higher intermediate rate, where asetrate alone is ppm off', () => {
  for (const [ppm, rate] of [
    [37.3, 48000],
    [-123.456, 48000],
    [61.7, 44100],
    [-38.9, 16000],
  ]) {
    const ratio = 1 + ppm * 1e-6
    const speed = speedFor(ratio, rate)
    assert.ok(speed, `${ppm} ppm at ${rate} Hz`)
    assert.ok(speed.upHz >= rate && speed.upHz <= SPEED_MAX_UPSAMPLE * rate, `Q ${speed.upHz}`)
    assert.ok(Number.isInteger(speed.asHz) && Number.isInteger(speed.upHz))
    const errorPpm = (speed.asHz / speed.upHz / ratio - 1) * 1e6
    assert.ok(
      Math.abs(errorPpm) <= 0.01,
      `${ppm} ppm at ${rate} Hz: ${speed.asHz}/${speed.upHz} is ${errorPpm} ppm off`,
    )
    const wholeHzPpm = (Math.round(rate * ratio) / rate / ratio - 1) * 1e6
    assert.ok(Math.abs(wholeHzPpm) > 0.1, `asetrate alone would be ${wholeHzPpm} ppm off`)
  }
})

test('speedFor: a ratio finer than the widest intermediate rate can show is no worse than untouched', () => {
  for (const ppm of [0.3, 2, 3, -4]) {
    const speed = speedFor(1 + ppm * 1e-6, 48000)
    const leftPpm = speed ? speed.errorPpm : -ppm
    assert.ok(Math.abs(leftPpm) <= Math.min(Math.abs(ppm), 1e6 / (2 * SPEED_MAX_UPSAMPLE * 48000)) + 1e-6, `${ppm}`)
  }
})

test('muxPlan, two cards: the first at +100 ppm sets the timeline, the second on time is played at its own rate; both stay on their samples an hour in', () => {
  const first = { ...base, offsetS: 0.25, clockRatio: 1.0001 }
  const second = { audioFile: 'b.wav', sampleRate: 44100, channels: 1, offsetS: -0.4, title: 'second', clockRatio: 1 }
  const plan = muxPlan({ ...first, more: [second] })
  const [more] = plan.more
  assert.ok(more.speed, 'the second stream is played at its own rate')
  assert.match(more.filter, new RegExp(`asetrate=${more.speed.asHz},aresample=44100,`))
  assert.ok(more.filter.indexOf('asetrate') < more.filter.indexOf('atrim'), 'its rate first, then its place')
  assert.doesNotMatch(plan.filter, /asetrate|aresample/, 'the first stream untouched')
  assert.equal(plan.args[plan.args.indexOf('-itsscale') + 1], (1.0001).toFixed(9), 'the video on the first card')
  // A sample at the start and one an hour in, each where the video shows its capture time.
  for (const [stream, place, rate] of [
    [first, plan, 48000],
    [second, more, 44100],
  ])
    for (const wallS of [1, 3599]) {
      const n = Math.round(wallS * rate * stream.clockRatio)
      const errorMs = (placedS(place, rate, n) - truthS({ ...stream, sampleRate: rate }, 1.0001, n)) * 1000
      // within a sample, and SPEED_ENOUGH_PPM's 36 µs an hour
      assert.ok(Math.abs(errorMs) < 1000 / rate + 0.036, `${stream.title} at ${wallS} s: ${errorMs.toFixed(3)} ms`)
    }
  // What every stream on the first card's clock did: the second drifts by the first's 100 ppm.
  const n = Math.round(3599 * 44100)
  const unspedMs =
    (placedS({ ...more, speed: null }, 44100, n) - truthS({ ...second, sampleRate: 44100 }, 1.0001, n)) * 1000
  assert.ok(Math.abs(unspedMs) > 300, `on the first card's clock: ${unspedMs.toFixed(1)} ms`)
})

test('muxPlan, two cards: one at +1000 ppm beside one on time, either first: each placed by its own clock', () => {
  const fast = { offsetS: 0.1, clockRatio: 1.001, title: 'fast' }
  const onTime = { offsetS: 0.3, clockRatio: 1, title: 'on time' }
  for (const [a, b] of [
    [fast, onTime],
    [onTime, fast],
  ]) {
    const plan = muxPlan({
      ...base,
      ...a,
      videoDurationS: 60,
      more: [{ ...b, audioFile: 'b.wav', sampleRate: 48000, channels: 1 }],
    })
    assert.ok(Math.abs(plan.more[0].speed.ratio / (b.clockRatio / a.clockRatio) - 1) < 1e-8)
    for (const [stream, place] of [
      [a, plan],
      [b, plan.more[0]],
    ]) {
      const n = Math.round(59 * 48000 * stream.clockRatio)
      const errorMs = (placedS(place, 48000, n) - truthS({ ...stream, sampleRate: 48000 }, a.clockRatio, n)) * 1000
      assert.ok(Math.abs(errorMs) < 0.05, `${a.title} first, ${stream.title}: ${errorMs.toFixed(3)} ms`)
    }
  }
})

test('muxPlan, two cards on the same clock: nothing resampled, as before', () => {
  const plan = muxPlan({
    ...base,
    offsetS: 0.2,
    clockRatio: 1.0003,
    more: [{ audioFile: 'b.wav', sampleRate: 48000, channels: 1, offsetS: 0.3, title: 'b', clockRatio: 1.0003 }],
  })
  assert.equal(plan.more[0].speed, null)
  assert.doesNotMatch(plan.more[0].filter, /asetrate|aresample/)
  // no clock measured on the second (an old sync file): taken as on time
  const old = muxPlan({
    ...base,
    offsetS: 0.2,
    more: [{ audioFile: 'b.wav', sampleRate: 48000, channels: 1, offsetS: 0.3, title: 'b' }],
  })
  assert.equal(old.more[0].speed, null)
})

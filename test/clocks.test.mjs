// Several microphones, each on its own clock: the mux plan's arithmetic (pure), and two pipe sources
// on a real PulseAudio server, one running 1000 ppm fast, muxed and checked against when each click
// was written.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { SPEED_MAX_UPSAMPLE, muxPlan, speedFor } from '../dist/record-audio.mjs'
import {
  decodeAudio,
  run,
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
  assert.deepEqual(speedFor(1.001, 48000), { nudgeHz: null, upHz: 48000, asHz: 48048, ratio: 1.001, errorPpm: 0 })
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

test('speedFor: a ratio within a few ppm of 1, finer than a P/Q step, is nudged a whole hertz first and still lands within 0.01 ppm', () => {
  for (const [ppm, rate] of [
    [0.3, 48000],
    [2, 48000],
    [-4, 48000],
    [20, 8000],
  ]) {
    const ratio = 1 + ppm * 1e-6
    const speed = speedFor(ratio, rate)
    assert.ok(speed?.nudgeHz, `${ppm} ppm at ${rate} Hz: nudged`)
    assert.equal(Math.abs(speed.nudgeHz - rate), 1)
    const appliedPpm = ((speed.nudgeHz / rate) * (speed.asHz / speed.upHz) - 1) * 1e6
    assert.ok(Math.abs(appliedPpm - ppm) <= 0.01, `${ppm} ppm at ${rate} Hz: ${appliedPpm} ppm applied`)
  }
  assert.equal(speedFor(1.001, 48000).nudgeHz, null, 'a coarse ratio needs no nudge')
})

test('muxPlan, each filter chain through real ffmpeg: a click a second, played at +20 ppm (nudged) and at −700 ppm, lands on the sample the plan says over 100 s', () => {
  const dir = tempDir()
  const rate = 8000
  const wav = path.join(dir, 'clicks.wav')
  // a 1 ms click at the start of every second, nothing else
  const made = run('ffmpeg', [
    ...['-v', 'error', '-f', 'lavfi', '-i', `aevalsrc='if(lt(mod(n,${rate}),8),0.8,0)':s=${rate}:d=100`],
    ...['-c:a', 'pcm_s16le', wav],
  ])
  assert.equal(made.status, 0, made.stderr)
  for (const ppm of [20, -700]) {
    const ratio = 1 + ppm * 1e-6
    const plan = muxPlan({
      ...base,
      sampleRate: rate,
      offsetS: 0,
      videoDurationS: null,
      more: [{ audioFile: wav, sampleRate: rate, channels: 1, offsetS: 0, title: 'b', clockRatio: ratio }],
    })
    const [more] = plan.more
    const out = path.join(dir, `out${ppm}.wav`)
    const played = run('ffmpeg', ['-v', 'error', '-i', wav, '-af', more.filter, '-c:a', 'pcm_s16le', out])
    assert.equal(played.status, 0, played.stderr)
    const clicks = clickOnsets(decodeAudio(out, rate), rate)
    assert.ok(clicks.length >= 99, `${clicks.length} clicks`)
    // the k-th click was sample k × rate of the card: played P/Q faster, it is at k × rate / ratio
    const worst = Math.max(...clicks.map((i, k) => Math.abs(i - (k * rate) / more.speed.ratio)))
    assert.ok(worst <= 1.5, `${ppm} ppm (${more.filter}): a click ${worst.toFixed(2)} samples off`)
    console.log(`${ppm} ppm, ${more.filter}: worst click ${worst.toFixed(2)} samples off over ${clicks.length} s`)
    const untouched = (99 * rate) / ratio - 99 * rate
    assert.ok(Math.abs(untouched) > 10, `untouched, the last click would be ${untouched.toFixed(1)} samples off`)
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

// PulseAudio only: its module-pipe-source reads the FIFO as fast as it is written, so a writer at
// 48048 samples a second is a card 1000 ppm fast. pipewire-pulse loads the module too, but reads the
// FIFO at its graph's clock (measured: the WAV grew at +9 ppm with clicks 48048 samples apart, the
// surplus waiting in the FIFO), so there the writer's pace is not the card's.
const pulse = usePulse({ tone: false })

/** Where the 2 ms clicks begin (one a second, far louder than the tone under them). */
function clickOnsets(samples, rate = 48000) {
  const onsets = []
  for (let i = 0; i < samples.length; i++)
    if (Math.abs(samples[i]) > 8000) {
      onsets.push(i)
      i += rate / 2
    }
  return onsets
}

/**
 * A stream's clicks in the muxed file against the truth of their construction: each click is
 * written at a whole wall-clock second, and the muxed file's timeline is the video's, on which a
 * wall second lasts `timelineRatio` seconds (the first card's clock, applied to the video). The
 * first sample's stamp (ffmpeg's, on a pipe source up to seconds off: issue 15 §1) moves every
 * click of a stream alike, so what is scored is how far each click is from where the first one
 * puts it: 0 from the first pair to the last when the stream keeps time with the video.
 */
function clickDrifts(muxedClicks, rate, timelineRatio) {
  const [first] = muxedClicks
  return muxedClicks.map((i) => {
    const seconds = Math.round((i - first) / rate / timelineRatio)
    return { seconds, driftMs: ((i - first) / rate - seconds * timelineRatio) * 1000 }
  })
}

test('pulse, two pipe-source microphones, one 1000 ppm fast: each measured on its own clock, and after the mux both keep time with the video from the first click to the last', async () => {
  const fast = await startFastSource(pulse, 1.001)
  const onTime = await startFastSource(pulse, 1)
  // Someone listening from the start: a pipe source nobody records from stops reading its FIFO, and
  // the writer's backlog then reaches the first capture late and in part (0.3 s lost, measured).
  const listeners = [fast, onTime].map((s) =>
    spawn('parec', ['-d', s.source, '--raw'], { env: pulse.env, stdio: ['ignore', 'ignore', 'ignore'] }),
  )
  await sleep(1000)
  try {
    const cwd = tempDir()
    const feed = 'cards'
    const video = startVideoRecorder(path.join(cwd, feed))
    await sleep(300)
    const devices = ['--device', fast.source, '--device', onTime.source]
    const tool = startTool([feed, '--format', 'pulse', ...devices, '--no-drift-fix', '--mux'], { cwd, env: pulse.env })
    await tool.recording(path.join(cwd, `${feed}-audio-2.wav`), 20000)
    // Each card's clock measured from the WAVs' growth (±220 ppm over 32 s here, ±150 over 48 s): the
    // cards' 1000 ppm difference must pass 3σ of both uncertainties together to be corrected.
    await sleep(48000)
    tool.ctrlC()
    await sleep(500)
    await video.stop()
    const result = await tool.exited
    assert.equal(result.code, 0, result.stderr)
    assert.deepEqual(ffmpegPidsIn(cwd), [], 'no ffmpeg left')
    const sync = JSON.parse(fs.readFileSync(path.join(cwd, `${feed}-audio-sync.json`), 'utf8'))
    const [fastPart, onTimePart] = sync.audios
    // The construction: the fast card's WAV holds 48048 samples a second, the other's 48000.
    for (const [part, ratio] of [
      [fastPart, 1.001],
      [onTimePart, 1],
    ]) {
      const clicks = clickOnsets(decodeAudio(part.audioFile))
      const perS = (clicks.at(-1) - clicks[0]) / (clicks.length - 1)
      assert.ok(Math.abs(perS / 48000 / ratio - 1) < 200e-6, `${part.audioDevice}: ${perS} samples a second`)
      assert.ok(part.audioClockPpm != null, `${part.audioDevice}: its clock was measured`)
      const truePpm = (ratio - 1) * 1e6
      assert.ok(
        Math.abs(part.audioClockPpm - truePpm) < Math.max(100, 3 * part.audioClockUncertaintyPpm),
        `${part.audioDevice}: ${part.audioClockPpm} ± ${part.audioClockUncertaintyPpm} ppm, truly ${truePpm}`,
      )
    }
    assert.notEqual(fastPart.audioClockRatio, 1, 'the fast card is corrected')
    assert.equal(sync.audioClockRatio, fastPart.audioClockRatio, 'the first card sets the timeline')
    const speed = sync.audioPlacements[1].speed
    assert.ok(speed, 'the second stream is played at its own rate')
    // at the two cards' measured difference (1000 ppm apart: past 3σ of both uncertainties together)
    assert.ok(Math.abs(speed.ratio - onTimePart.audioClockHz / fastPart.audioClockHz) < 1e-7)
    const appliedRatios = [fastPart.audioClockRatio, speed.ratio * fastPart.audioClockRatio]
    // By default its line says the card's rate against the first's; the sync file's notes (and --verbose) say how.
    assert.match(
      result.stderr,
      new RegExp(
        `"${onTime.source}"  audio starts \\d+\\.\\d{3} s .*(after|before) the video.*; card −\\d+ ppm, resampled`,
      ),
    )
    const said = sync.notes.map((n) => n.text).join('\n')
    assert.match(said, new RegExp(`Clock, "${onTime.source}": its card runs −\\d+ ppm against the first's`))

    // Each stream's clicks on the timeline: a wall second lasts the first card's applied ratio there,
    // and a card truly at r, played at (its applied ratio / the first's), spaces them r × the first's
    // applied ratio / its own. What is left is the clock's measurement error (the card clock's own
    // part, within its stated uncertainty); the mux must add nothing to it.
    const timelineRatio = sync.audioClockRatio
    for (const [k, [part, trueRatio]] of [
      [fastPart, 1.001],
      [onTimePart, 1],
    ].entries()) {
      const clicks = clickDrifts(clickOnsets(decodeAudio(sync.muxedFile, 48000, k)), 48000, timelineRatio)
      assert.ok(clicks.length >= 25, `stream ${k + 1}: ${clicks.length} clicks`)
      const perSecondMs = timelineRatio * (trueRatio / appliedRatios[k] - 1) * 1000
      for (const { seconds, driftMs } of clicks)
        assert.ok(
          Math.abs(driftMs - seconds * perSecondMs) < 2,
          `stream ${k + 1}, ${seconds} s in: ${driftMs.toFixed(1)} ms off the first click's time, the clock's` +
            ` measurement explains ${(seconds * perSecondMs).toFixed(1)} ms`,
        )
      // the measurement itself within what it claims (3 σ): the two cards' when the second is corrected
      const last = clicks.at(-1)
      const sigmaPpm = Math.hypot(fastPart.audioClockUncertaintyPpm, k ? onTimePart.audioClockUncertaintyPpm : 0)
      assert.ok(
        Math.abs(last.driftMs) < 1 + 3 * sigmaPpm * 1e-6 * last.seconds * 1000,
        `stream ${k + 1}: ${last.driftMs.toFixed(1)} ms after ${last.seconds} s, clock ± ${sigmaPpm.toFixed(0)} ppm`,
      )
      console.log(
        `stream ${k + 1} (${trueRatio === 1 ? 'on time' : '+1000 ppm'}): clock ${part.audioClockPpm.toFixed(0)} ±` +
          ` ${part.audioClockUncertaintyPpm.toFixed(0)} ppm, applied ${appliedRatios[k]}; last click` +
          ` ${last.driftMs.toFixed(1)} ms after ${last.seconds} s; worst residual beyond the clock's error` +
          ` ${Math.max(...clicks.map((c) => Math.abs(c.driftMs - c.seconds * perSecondMs))).toFixed(2)} ms`,
      )
    }
  } finally {
    for (const listener of listeners) listener.kill()
    await fast.stop()
    await onTime.stop()
  }
})

test('otherClockRatio: two cards are judged by how they differ, with both uncertainties', async () => {
  const { otherClockRatio } = await import('../dist/record-audio.mjs')
  const card = (ppm, uncertaintyPpm, applied) => ({
    audioSampleRate: 48000,
    audioClockHz: 48000 * (1 + ppm * 1e-6),
    audioClockUncertaintyPpm: uncertaintyPpm,
    audioClockRatio: applied ? 1 + ppm * 1e-6 : 1,
    audioDurationS: 3600,
  })
  // +30 ± 9 ppm (3.3σ: corrected) beside +25 ± 9 ppm (2.8σ alone): 5 ± 13 ppm apart, the same timeline.
  const first = card(30, 9, true)
  assert.equal(otherClockRatio(first, card(25, 9, false)), first.audioClockRatio)
  // 1000 ppm apart, measured to 10 ppm each: the second at its own measured rate.
  const fast = card(1000, 10, true)
  const onTime = card(0, 10, false)
  assert.ok(Math.abs(otherClockRatio(onTime, fast) - 1.001) < 1e-12)
  assert.ok(Math.abs(otherClockRatio(fast, onTime) - 1) < 1e-12)
  // Unmeasured: its own ratio, as before.
  assert.equal(otherClockRatio(first, { ...card(0, 0, false), audioClockHz: null }), 1)
})

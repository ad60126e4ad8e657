#!/usr/bin/env node
// record-audio: record a microphone with ffmpeg beside a TracktorLive video recording; at ctrl-c,
// hand back a finalized WAV, the offset between audio and video, and the ffmpeg command that
// muxes them in sync. Run `record-audio --help`, or read README.md.

// ── Settings ─────────────────────────────────────────────────────────────────────────────────
// Edit these, or override any of them with its flag (shown after each). null means "work it out".
// <feed_id> or --feed-id: TracktorLive's feed id, videos in ./<feed_id>/; null → the subfolder recording that
// overlaps the audio
const FEED_ID: string | null = null
// --format: alsa | pulse | avfoundation | dshow; null → alsa (Linux), avfoundation (macOS), dshow (Windows)
const AUDIO_INPUT_FMT: string | null = null
// --device: null → "default" (alsa, pulse), ":0" (avfoundation); dshow has none: list with --format dshow.
// Several microphones at once: a list, or --device once per microphone (one WAV and one audio stream each)
const AUDIO_DEVICE: string | string[] | null = null
// --rate: samples per second, asked of the device and written to the WAV; a list: one per device, in order
const AUDIO_SAMPLERATE: number | number[] = 48000
// --channels: 1 = mono, 2 = stereo; a list: one per device, in order
const AUDIO_CHANNELS: number | number[] = 1
// --out: null → ./<feed_id>-audio.wav, or ./audio-<UTC start>.wav without one (-2, -3 … if taken); never
// overwritten
const AUDIO_OUTFILE: string | null = null
// --sync-out: null → the WAV's name with -sync.json instead of .wav
const SYNC_OUTFILE: string | null = null
// --video: null → the newest TracktorLive recording <ULID>.mp4 in ./<feed_id>/ (mux later: the recording's own)
const VIDEO_INFILE: string | null = null
// --muxed-out: null → the video's path without .mp4, plus MUXED_SUFFIX
const MUXED_OUTFILE: string | null = null
// --muxed-suffix: appended to the video's name for the muxed file
const MUXED_SUFFIX = '-with-audio.mp4'
// --ffmpeg: ffmpeg's name on PATH or its full path; ffprobe is looked for beside it
const PATH_TO_FFMPEG = 'ffmpeg'
// --timesync: TracktorLive's timesync cassette file; null → ./<feed_id>-timesyncUTC.parquet if it exists
const TIMESYNC_INFILE: string | null = null
// --video-start: the first frame's time, epoch seconds or ISO 8601 with a zone; beats every anchor on disk
const VIDEO_START: string | null = null
// --clock-offset: seconds added to every video time (ULID, timesync, mtime, --video-start) when the video's
// computer clock differs
const CLOCK_OFFSET_S = 0
// --camera-latency: seconds from the camera taking a frame to TracktorLive stamping it (a network
// stream's decode latency, then the read and the tracking: the stamp follows them), which no file holds;
// taken off every video time; null → the one kept for this camera (--events measures it), else unmeasured
const CAMERA_LATENCY_S: number | null = null
// --no-calibration: ignore the camera latencies kept in ./record-audio-calibration.json (they are still
// measured and kept with --events)
const CALIBRATION = true
// --no-drift-fix: keep the video's nominal timeline even when its real frame rate differs from it
const DRIFT_FIX = true
// --events: find the lab's sync events (a flash in view, a click or clap heard at the same moment) in
// the finished video and the WAV, and align on them instead of the anchors; flash at irregular gaps (a
// regular train is ambiguous at its period); fewer than two pairs that agree, or an ambiguous train, fall back
// to the anchors with a warning
const SYNC_EVENTS = false
// --all-videos: every TracktorLive recording that overlaps the audio gets its own offset, command (and,
// with --mux, muxed file), not only the newest: one microphone left running across many trials
const ALL_VIDEOS = false
// --mux: after the stop, wait for the video to be finished, mux it and check the result
const MUX_AFTER_STOP = false
// --wait: how long --mux waits for TracktorLive to finish the video, in seconds
const MUX_WAIT_S = 600
// --plot: a PNG of the audio's waveform over the video's span, the offset marked; null → none
const PLOT_OUTFILE: string | null = null
// --verbose: the whole summary at the stop (the frame clock, the drift's reasoning, the anchors' disagreement, the
// first sample's check) instead of a line per file; the sync file keeps all of it either way
const VERBOSE = false

// ── Map ──────────────────────────────────────────────────────────────────────────────────────
// Pure, exported and unit-tested, in this order:
//   Settings and flags      SETTINGS_TABLE (constant, flag, help), parseCommand, helpText
//   Names and times on disk ULIDs, the newest recording, free names (one WAV per device), overlaps
//   The capture             ffmpeg's arguments, the watchdog, the first sample's time, WAV headers
//   The sound card's clock  its real rate from the WAV's growth (cardClock)
//   The first sample, checked  the device's stamp against the samples' arrival (arrivalEnvelope, checkAudioStart)
//   The video, its clock    is the mp4 finished; the anchors and the drift (videoTiming)
//   The picture             --plot
//   Sync events             flashes and clicks found, paired, fitted (--events, check)
//   The live status         level and status line (a level per device)
//   Camera latency          measured by the events, kept per camera (record-audio-calibration.json), applied;
//                           the offset's bounds (offsetBounds)
//   Sync arithmetic, mux    which codec, the mux plan (a stream per device), coverage, the videos'
//                           table (--all-videos), quoting for each shell
//   The summary             typed notes (ok, warning, detail, advice…), the lines they make (renderNotes: once
//                           per run, ≤ 120 columns, details with --verbose), a video's line, signed figures
//   The stop                which signals, and when two are one request
//   The sync record         SyncRecord: the one file that outlives the run (audios: per device;
//                           videos: per recording)
// Effectful, at the bottom: The run (record → capture, one per device → finish → chooseVideos →
// syncToVideo, once per video → deliver → runMux; muxLater; repair; check; main). Each stage hands its
// notes to the run's Summary, which says them at once (renderNotes) and the advice at the end.

import { $, which } from 'zx'
import minimist from 'minimist'
import { type ChildProcess, type SpawnOptions, spawn, spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import fs from 'node:fs'
import nodeModule from 'node:module'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { setTimeout as sleep } from 'node:timers/promises'

// ── Settings and flags ───────────────────────────────────────────────────────────────────────

export type Platform = NodeJS.Platform
export const FORMATS = ['alsa', 'pulse', 'avfoundation', 'dshow'] as const
export type Format = (typeof FORMATS)[number]

/** One microphone: what ffmpeg opens, and what is asked of it. */
export interface AudioInput {
  device: string
  sampleRate: number
  channels: number
}

/** The settings a recording was made with, as the sync record keeps them. */
export interface SettingsInForce {
  values: Record<string, string | number | boolean | null | (string | number)[]> // by flag name
  fromFlags: string[] // the flags the command line gave; every other value is the settings block's
}

export interface Settings extends TimingOptions {
  inForce?: SettingsInForce // what the sync record keeps of how the run was asked for
  feedId: string | null // null: find the video whose time span overlaps the audio
  format: Format
  inputs: AudioInput[] // one per --device, recorded together
  audioFile: string | null // null: the default name, chosen when the recording starts
  syncFile: string | null
  videoFile: string | null
  muxedFile: string | null
  muxedSuffix: string
  ffmpeg: string
}

export interface MuxLater extends Omit<TimingOptions, keyof TimingSettings> {
  syncFile: string
  videoFile: string | null
  muxedFile: string | null
  muxedSuffix: string
  ffmpeg: string
  given: Partial<TimingSettings> // the timing flags given now; the rest comes from the sync file
}

export type Command =
  | { kind: 'help' }
  | { kind: 'version' }
  | { kind: 'init' } // record-audio init: an editable copy of this script in the current folder
  | { kind: 'list-devices'; format: Format; ffmpeg: string }
  | { kind: 'record'; settings: Settings }
  | { kind: 'mux'; mux: MuxLater } // record-audio mux SYNC_FILE: the command again, e.g. once the video exists
  | { kind: 'repair'; file: string } // record-audio repair FILE.wav: sizes for a WAV whose writer was killed
  | { kind: 'check'; file: string; json: boolean; ffmpeg: string } // record-audio check FILE: the sync at its events

interface SettingRow {
  flag: string
  value: string | number | boolean | null | string[] | number[]
  about: string
  unset?: string // what null means, for --help
}

/**
 * Every setting once: its constant, its flag, what it is, and what null means for it. The flags,
 * the defaults that tests replace, and --help all come from here.
 */
/** Where --events keeps each camera's measured latency: the working folder, beside the feeds' folders. */
export const CALIBRATION_FILE = 'record-audio-calibration.json'

const SETTINGS_TABLE = {
  feedId: {
    flag: 'feed-id',
    value: FEED_ID,
    about: "TracktorLive's feed id (or the first argument); its videos are in ./<feed_id>/",
    unset: 'none: the recording in any subfolder that overlaps the audio (--no-feed-id)',
  },
  format: {
    flag: 'format',
    value: AUDIO_INPUT_FMT,
    about: 'capture API: alsa | pulse (Linux), avfoundation (macOS), dshow (Windows)',
    unset: "this system's: alsa, avfoundation or dshow",
  },
  device: {
    flag: 'device',
    value: AUDIO_DEVICE,
    about: 'capture device, as ffmpeg names it for that format (--list-devices); again for more',
    unset: 'default (alsa, pulse), :0 (avfoundation); dshow needs one',
  },
  sampleRate: { flag: 'rate', value: AUDIO_SAMPLERATE, about: 'sample rate in Hz (one for all devices, or one each)' },
  channels: { flag: 'channels', value: AUDIO_CHANNELS, about: 'number of channels (one for all, or one each)' },
  audioFile: {
    flag: 'out',
    value: AUDIO_OUTFILE,
    about: 'the WAV to write (never overwritten)',
    unset: './<feed_id>-audio.wav, or ./audio-<UTC start>.wav with no feed id',
  },
  syncFile: {
    flag: 'sync-out',
    value: SYNC_OUTFILE,
    about: 'the JSON file with the timing and the mux command',
    unset: "the WAV's name + -sync.json",
  },
  videoFile: {
    flag: 'video',
    value: VIDEO_INFILE,
    about: 'the TracktorLive recording to sync to',
    unset: "the newest ./<feed_id>/<ULID>.mp4; with mux, the recording's own",
  },
  muxedFile: {
    flag: 'muxed-out',
    value: MUXED_OUTFILE,
    about: 'the muxed file',
    unset: "the video's path without .mp4, plus the suffix",
  },
  muxedSuffix: { flag: 'muxed-suffix', value: MUXED_SUFFIX, about: "suffix for the muxed file's default name" },
  ffmpeg: { flag: 'ffmpeg', value: PATH_TO_FFMPEG, about: 'ffmpeg (name on PATH or full path); ffprobe beside it' },
  timesyncFile: {
    flag: 'timesync',
    value: TIMESYNC_INFILE,
    about: "TracktorLive's timesync file: the first frame's time and the real frame rate",
    unset: './<feed_id>-timesyncUTC.parquet if it exists',
  },
  videoStart: {
    flag: 'video-start',
    value: VIDEO_START,
    about: "the first frame's time (epoch seconds, or ISO 8601 with a zone)",
    unset: "the tracking CSV's frame clock (-w), else the timesync file, else the ULID",
  },
  cameraLatencyS: {
    flag: 'camera-latency',
    value: CAMERA_LATENCY_S,
    about: 'seconds from the camera taking a frame to TracktorLive stamping it (after tracking)',
    unset: `kept in ./${CALIBRATION_FILE} (--events measures it), else unmeasured`,
  },
  calibration: {
    flag: 'calibration',
    value: CALIBRATION,
    about: `apply the camera latency kept for this camera in ./${CALIBRATION_FILE}`,
  },
  clockOffsetS: {
    flag: 'clock-offset',
    value: CLOCK_OFFSET_S,
    about: "seconds added to the video's times when its computer's clock differs",
  },
  driftFix: {
    flag: 'drift-fix',
    value: DRIFT_FIX,
    about: 'retime a video whose real frame rate differs from its nominal one',
  },
  events: {
    flag: 'events',
    value: SYNC_EVENTS,
    about: 'align on flashes seen and clicks heard together, at irregular gaps, over the anchors',
  },
  allVideos: {
    flag: 'all-videos',
    value: ALL_VIDEOS,
    about: 'each recording the audio overlaps gets a command, not only the newest',
  },
  mux: { flag: 'mux', value: MUX_AFTER_STOP, about: 'after the stop, wait for the video, mux it and check the result' },
  waitS: { flag: 'wait', value: MUX_WAIT_S, about: 'how long --mux waits for the video to be finished, in seconds' },
  plotFile: {
    flag: 'plot',
    value: PLOT_OUTFILE,
    about: "a PNG: the audio's waveform above the video's span, their starts marked",
    unset: 'none',
  },
  verbose: {
    flag: 'verbose',
    value: VERBOSE,
    about: "the whole summary: the frame clock, the drift's reasoning, the anchors' disagreement",
  },
} satisfies Record<string, SettingRow>

export type FileDefaults = { -readonly [K in keyof typeof SETTINGS_TABLE]: (typeof SETTINGS_TABLE)[K]['value'] }

/** The settings block as values, so that tests can run the same parsing with other defaults. */
export const FILE_DEFAULTS = Object.fromEntries(
  Object.entries(SETTINGS_TABLE).map(([key, row]) => [key, row.value]),
) as FileDefaults

const SETTING_ROWS: [keyof FileDefaults, SettingRow][] = Object.entries(SETTINGS_TABLE) as [
  keyof FileDefaults,
  SettingRow,
][]
/** The flags that take a value (all but the on/off ones). */
const VALUE_FLAGS = SETTING_ROWS.filter(([, row]) => typeof row.value !== 'boolean').map(([, row]) => row.flag)

export class UsageError extends Error {}

export function defaultFormat(platform: Platform): Format {
  return platform === 'darwin' ? 'avfoundation' : platform === 'win32' ? 'dshow' : 'alsa'
}

/** The device list command the user should run for a format; the fix for most device errors. */
export function listDevicesHint(format: Format, ffmpeg = 'ffmpeg'): string {
  switch (format) {
    case 'pulse':
      return `${ffmpeg} -hide_banner -sources pulse (or: pactl list short sources)`
    case 'alsa':
      return `${ffmpeg} -hide_banner -sources alsa (or: arecord -L)`
    case 'avfoundation':
      return `${ffmpeg} -hide_banner -f avfoundation -list_devices true -i ""`
    case 'dshow':
      return `${ffmpeg} -hide_banner -list_devices true -f dshow -i dummy`
  }
}

/** The edits (a letter added, dropped or changed) that make one name the other: Levenshtein's distance. */
export function editDistance(a: string, b: string): number {
  let row = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    const next = [i]
    for (let j = 1; j <= b.length; j++)
      next[j] = Math.min(row[j] + 1, next[j - 1] + 1, row[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1))
    row = next
  }
  return row[b.length]
}

/** The listed name one or two letters off a mistyped one (the nearest, first listed on a tie); null: none. */
export function didYouMean(name: string, names: string[]): string | null {
  let best: { name: string; distance: number } | null = null
  for (const candidate of names) {
    const distance = editDistance(name.toLowerCase(), candidate.toLowerCase())
    if (candidate === name || distance > Math.min(2, Math.floor(name.length / 3))) continue
    if (!best || distance < best.distance) best = { name: candidate, distance }
  }
  return best?.name ?? null
}

/** ffmpeg's own device list for a format (avfoundation prints its list in the log). */
export function listDevicesArgs(format: Format): string[] {
  if (format === 'avfoundation') return ['-hide_banner', '-f', 'avfoundation', '-list_devices', 'true', '-i', '']
  return ['-hide_banner', '-sources', format]
}

/** `-sources` lines: `* name [description]` for the default, `  name [description]` for the rest. */
export function parseSources(text: string): { name: string; description: string; isDefault: boolean }[] {
  return [...text.matchAll(/^([* ]) (\S+) \[(.*)\]/gm)].map(([, mark, name, description]) => ({
    name,
    description,
    isDefault: mark === '*',
  }))
}

export function defaultDevice(format: Format): string | null {
  if (format === 'alsa' || format === 'pulse') return 'default'
  if (format === 'avfoundation') return ':0' // no video, first audio device
  return null // dshow devices have no stable default name
}

const PLATFORM_FORMATS: Record<Format, Platform[]> = {
  alsa: ['linux'],
  pulse: ['linux', 'freebsd'],
  avfoundation: ['darwin'],
  dshow: ['win32'],
}

function parseFormat(args: minimist.ParsedArgs, platform: Platform, defaults: FileDefaults): Format {
  const formatText = String(args.format ?? defaults.format ?? defaultFormat(platform))
  if (!(FORMATS as readonly string[]).includes(formatText))
    throw new UsageError(`--format ${JSON.stringify(formatText)} is unknown: use one of ${FORMATS.join(', ')}`)
  const format = formatText as Format
  if (!PLATFORM_FORMATS[format].includes(platform))
    throw new UsageError(`--format ${format} does not exist on ${platform}: use ${defaultFormat(platform)}`)
  return format
}

/** What happens after the stop, for a recording and for `mux` alike. */
export interface TimingOptions extends TimingSettings {
  mux: boolean
  waitS: number // --mux, --wait
  json: boolean // --json: the sync record on stdout, for scripts
  plotFile: string | null // --plot
  verbose: boolean // --verbose: the whole summary
}

/** --wait, --plot, --json and --verbose: what happens after the stop, read alike for a recording and for mux later. */
function afterStopFlags(args: minimist.ParsedArgs, defaults: Pick<FileDefaults, 'waitS' | 'plotFile'>) {
  const plotFile: string | null = args.plot ?? defaults.plotFile
  if (plotFile != null && !/\.png$/i.test(plotFile))
    throw new UsageError(`--plot ${JSON.stringify(plotFile)} must end in .png`)
  return {
    waitS: integerIn('wait', args.wait ?? defaults.waitS, 0, 7 * 24 * 3600),
    json: Boolean(args.json),
    plotFile,
    verbose: Boolean(args.verbose),
  }
}

/** The timing flags given on this command line, and only those: `mux` later fills the rest from the sync file. */
/** Whether the command line gave --flag (with or without a value) or --no-flag. */
const flagGiven = (argv: string[], flag: string) => argv.some((arg) => new RegExp(`^--(no-)?${flag}(=|$)`).test(arg))

function timingFlags(args: minimist.ParsedArgs, argv: string[]): Partial<TimingSettings> {
  const given: Partial<TimingSettings> = {}
  if (args['video-start'] !== undefined) given.videoStartEpochS = parseVideoStart(args['video-start'])
  if (args['clock-offset'] !== undefined) given.clockOffsetS = parseClockOffset(args['clock-offset'])
  if (args['camera-latency'] !== undefined)
    given.cameraLatencyS = parseSeconds('camera-latency', args['camera-latency'])
  if (argv.some((arg) => /^--(no-)?calibration(=|$)/.test(arg))) given.calibration = Boolean(args.calibration)
  if (args.timesync !== undefined) given.timesyncFile = parseTimesyncFile(args.timesync)
  if (flagGiven(argv, 'drift-fix')) given.driftFix = Boolean(args['drift-fix'])
  if (flagGiven(argv, 'events')) given.events = Boolean(args.events)
  if (flagGiven(argv, 'all-videos')) given.allVideos = Boolean(args['all-videos'])
  return given
}

function parseVideoStart(text: unknown): number | null {
  if (text == null) return null
  const epochS = parseEpoch(String(text))
  if (Number.isNaN(epochS))
    throw new UsageError(
      `--video-start ${JSON.stringify(text)} is not a time: give epoch seconds (1795817200.25)` +
        ' or ISO 8601 with a zone (2026-11-27T22:24:51.770Z)',
    )
  return epochS
}

function parseSeconds(flag: string, raw: unknown): number {
  const text = String(raw)
  if (!/^\d+(\.\d+)?$/.test(text) || Number(text) > 10)
    throw new UsageError(
      `--${flag} ${JSON.stringify(text)} is not a number of seconds from 0 to 10, e.g. --${flag}=0.135`,
    )
  return Number(text)
}

function parseClockOffset(raw: unknown): number {
  const text = String(raw)
  if (!/^[+-]?\d+(\.\d+)?$/.test(text))
    throw new UsageError(`--clock-offset ${JSON.stringify(text)} is not a number of seconds, e.g. --clock-offset=-0.25`)
  return Number(text)
}

function parseTimesyncFile(file: string | null): string | null {
  if (file != null && !/\.parquet$/i.test(file))
    throw new UsageError(
      `--timesync ${JSON.stringify(file)} must be the .parquet file of TracktorLive's timesync cassette`,
    )
  return file
}

function parseTiming(args: minimist.ParsedArgs, argv: string[], defaults: FileDefaults): TimingOptions {
  const given = timingFlags(args, argv)
  return {
    timesyncFile: given.timesyncFile !== undefined ? given.timesyncFile : parseTimesyncFile(defaults.timesyncFile),
    videoStartEpochS:
      given.videoStartEpochS !== undefined ? given.videoStartEpochS : parseVideoStart(defaults.videoStart),
    clockOffsetS: given.clockOffsetS ?? parseClockOffset(defaults.clockOffsetS),
    cameraLatencyS:
      given.cameraLatencyS !== undefined
        ? given.cameraLatencyS
        : defaults.cameraLatencyS == null
          ? null
          : parseSeconds('camera-latency', defaults.cameraLatencyS),
    calibration: given.calibration ?? defaults.calibration,
    driftFix: given.driftFix ?? defaults.driftFix,
    events: given.events ?? defaults.events,
    allVideos: given.allVideos ?? defaults.allVideos,
    mux: Boolean(args.mux),
    ...afterStopFlags(args, defaults),
  }
}

/** Epoch seconds from `1795817200.25` or an ISO 8601 time with a zone; NaN when neither. */
export function parseEpoch(text: string): number {
  if (/^\d+(\.\d+)?$/.test(text)) return Number(text)
  if (!/^\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d:?\d\d)$/i.test(text)) return NaN
  return Date.parse(text) / 1000
}

function integerIn(flag: string, raw: unknown, min: number, max: number): number {
  const text = String(raw)
  if (!/^\d+$/.test(text) || +text < min || +text > max)
    throw new UsageError(`--${flag} ${JSON.stringify(text)} is not a whole number from ${min} to ${max}`)
  return +text
}

/** The flags that may be given once per device. */
const PER_DEVICE_FLAGS = ['device', 'rate', 'channels']

/** --device once per microphone; --rate and --channels once for all of them, or once each in the same order. */
function parseInputs(args: minimist.ParsedArgs, format: Format, defaults: FileDefaults): AudioInput[] {
  const listed = (value: unknown) => (value == null ? [] : ([value].flat() as unknown[]).map(String))
  const devices = listed(args.device ?? defaults.device)
  if (!devices.length) {
    const device = defaultDevice(format)
    if (device == null)
      throw new UsageError(
        `--format ${format} needs --device "audio=<name>": list the names with record-audio --list-devices`,
      )
    devices.push(device)
  }
  const twice = devices.find((device, k) => devices.indexOf(device) !== k)
  if (twice != null)
    throw new UsageError(`--device ${JSON.stringify(twice)} is given twice: one capture per device, so name it once`)
  const perDevice = (flag: string, raw: unknown, min: number, max: number) => {
    const values = listed(raw).map((value) => integerIn(flag, value, min, max))
    if (values.length !== 1 && values.length !== devices.length)
      throw new UsageError(
        `--${flag} is given ${values.length} times for ${devices.length} devices:` +
          ' give it once for all of them, or once per device in the same order',
      )
    return devices.map((_, k) => values[values.length === 1 ? 0 : k])
  }
  const rates = perDevice('rate', args.rate ?? defaults.sampleRate, 1000, 768000)
  const channels = perDevice('channels', args.channels ?? defaults.channels, 1, 64)
  return devices.map((device, k) => ({ device, sampleRate: rates[k], channels: channels[k] }))
}

/** The subcommands and the one file each takes. */
const SUBCOMMANDS = {
  mux: { file: 'sync.json', what: 'mux a recording later from its sync file (--print: print only)' },
  repair: { file: 'file.wav', what: "write the sizes into a killed recording's WAV header" },
  check: { file: 'file.mp4', what: 'how far sound is from picture at each flash and click (--json)' },
} as const

/** Flags over the file's settings; every problem is a UsageError with a one-line message. */
export function parseCommand(argv: string[], platform: Platform, defaults: FileDefaults = FILE_DEFAULTS): Command {
  const unknown: string[] = []
  const args = minimist(argv, {
    string: [...VALUE_FLAGS, '_'], // '_': a feed id 007 stays 007, not 7
    boolean: [
      'help',
      'version',
      'drift-fix',
      'calibration',
      'events',
      'all-videos',
      'mux',
      'json',
      'list-devices',
      'print',
      'verbose',
    ],
    default: {
      'drift-fix': defaults.driftFix,
      calibration: defaults.calibration,
      events: defaults.events,
      'all-videos': defaults.allVideos,
      mux: defaults.mux,
      verbose: defaults.verbose,
    },
    alias: { h: 'help' },
    unknown: (arg) => {
      if (!arg.startsWith('-') || arg === '-') return true
      unknown.push(arg)
      return false
    },
  })
  if (unknown.length && /^-\d/.test(unknown[0]))
    throw new UsageError(`${unknown[0]}: a negative value needs an equals sign, e.g. --clock-offset=${unknown[0]}`)
  if (unknown.length) throw new UsageError(`unknown flag ${unknown[0].split('=')[0]}: see record-audio --help`)
  if (args.help) return { kind: 'help' }
  if (args.version) return { kind: 'version' }
  for (const flag of VALUE_FLAGS) {
    if (Array.isArray(args[flag]) && !PER_DEVICE_FLAGS.includes(flag))
      throw new UsageError(`--${flag} is given more than once: give it once`)
    if ([args[flag]].flat().includes('')) throw new UsageError(`--${flag} needs a value: --${flag}=VALUE`)
    // --no-feed-id means "no feed id" over the settings block; no other value flag can be off.
    if (args[flag] === false && flag !== 'feed-id')
      throw new UsageError(`--no-${flag} is not a flag: leave --${flag} out for its default, or give --${flag}=VALUE`)
  }
  if (args['list-devices'])
    return {
      kind: 'list-devices',
      format: parseFormat(args, platform, defaults),
      ffmpeg: String(args.ffmpeg ?? defaults.ffmpeg),
    }
  const positional: string[] = args._
  const sub = parseSubcommand(args, argv, positional, defaults)
  if (sub) return sub
  return parseRecord(args, argv, positional, platform, defaults)
}

/** A recording: its feed, devices, files and timing, each checked. */
function parseRecord(
  args: minimist.ParsedArgs,
  argv: string[],
  positional: string[],
  platform: Platform,
  defaults: FileDefaults,
): Command {
  if (args.print) throw new UsageError('--print goes with mux: record-audio mux <sync.json> --print')
  if (positional.length > 1)
    throw new UsageError(`too many arguments (${positional.join(' ')}): give one feed id; quote names with spaces`)
  if (positional.length && args['feed-id'] !== undefined)
    throw new UsageError('the feed id is given twice (argument and --feed-id): give it once')

  const format = parseFormat(args, platform, defaults)

  const inputs = parseInputs(args, format, defaults)

  const audioFile = args.out ?? defaults.audioFile
  if (audioFile != null && !/\.wav$/i.test(audioFile))
    throw new UsageError(`--out ${JSON.stringify(audioFile)} must end in .wav`)
  const { videoFile, muxedFile, muxedSuffix } = parseVideoFlags(args, defaults)

  const timing = parseTiming(args, argv, defaults)
  checkAllVideos(timing.allVideos, videoFile, muxedFile)
  const feedId: string | null = args['feed-id'] === false ? null : (positional[0] ?? args['feed-id'] ?? defaults.feedId)
  if (feedId != null && (feedId.trim() === '' || /[\\/]/.test(feedId) || feedId === '.' || feedId === '..'))
    throw new UsageError(`feed id ${JSON.stringify(feedId)} is not a folder name: give the id alone, without slashes`)

  return {
    kind: 'record',
    settings: {
      feedId,
      format,
      inputs,
      audioFile,
      muxedSuffix,
      videoFile,
      muxedFile,
      syncFile: args['sync-out'] ?? defaults.syncFile,
      ffmpeg: String(args.ffmpeg ?? defaults.ffmpeg),
      ...timing,
      inForce: settingsInForce(args, argv, positional, defaults),
    },
  }
}

/** Every setting as this run has it, by flag, and which of them the command line gave (the rest: the file's). */
export function settingsInForce(
  args: minimist.ParsedArgs,
  argv: string[],
  positional: string[],
  defaults: FileDefaults,
): SettingsInForce {
  const given = (flag: string) => flagGiven(argv, flag) || (flag === 'feed-id' && positional.length > 0)
  const values: SettingsInForce['values'] = {}
  for (const [key, row] of SETTING_ROWS) {
    const fromFlag = row.flag === 'feed-id' && positional.length ? positional[0] : args[row.flag]
    values[row.flag] = (given(row.flag) ? fromFlag : defaults[key]) ?? null
  }
  return { values, fromFlags: SETTING_ROWS.map(([, row]) => row.flag).filter(given) }
}

/** mux, repair and check: a subcommand and its one file, with only the flags that mean something to it. */
function parseSubcommand(
  args: minimist.ParsedArgs,
  argv: string[],
  positional: string[],
  defaults: FileDefaults,
): Command | null {
  if (positional[0] === 'init' && positional.length === 1) {
    const other = VALUE_FLAGS.find((flag) => args[flag] !== undefined)
    if (other) throw new UsageError(`--${other} has no effect with init: edit it in the copy's settings`)
    return { kind: 'init' }
  }
  const subcommand = Object.hasOwn(SUBCOMMANDS, positional[0] ?? '')
    ? (positional[0] as keyof typeof SUBCOMMANDS)
    : null
  if (subcommand && positional.length !== 2)
    throw new UsageError(
      `${subcommand} takes one file: record-audio ${subcommand} <${SUBCOMMANDS[subcommand].file}>` +
        ` (to record a feed named ${subcommand}: --feed-id ${subcommand})`,
    )
  if (subcommand === 'mux') return parseMuxLater(args, argv, positional[1], defaults)
  if (subcommand === 'repair') {
    const other = VALUE_FLAGS.find((flag) => args[flag] !== undefined)
    if (other) throw new UsageError(`--${other} has no effect with repair: give only the WAV file`)
    if (!/\.wav$/i.test(positional[1]))
      throw new UsageError(`repair takes a .wav file, not ${JSON.stringify(positional[1])}`)
    return { kind: 'repair', file: positional[1] }
  }
  if (subcommand === 'check') {
    const other = VALUE_FLAGS.find((flag) => flag !== 'ffmpeg' && args[flag] !== undefined)
    if (other) throw new UsageError(`--${other} has no effect with check: give the file, and --json if wanted`)
    return { kind: 'check', file: positional[1], json: Boolean(args.json), ffmpeg: args.ffmpeg ?? defaults.ffmpeg }
  }
  return null
}

/** The flags that mean something to `mux` later: where things are, and the timing to redo. */
const MUX_LATER_FLAGS = [
  'video',
  'muxed-out',
  'muxed-suffix',
  'ffmpeg',
  'timesync',
  'video-start',
  'clock-offset',
  'camera-latency',
  'wait',
  'plot',
]

function parseMuxLater(args: minimist.ParsedArgs, argv: string[], syncFile: string, defaults: FileDefaults): Command {
  const other = VALUE_FLAGS.find((flag) => args[flag] !== undefined && !MUX_LATER_FLAGS.includes(flag))
  if (other) throw new UsageError(`--${other} has no effect with mux: the sync file holds the recording's settings`)
  if (!/\.json$/i.test(syncFile))
    throw new UsageError(`mux takes the sync file (.json) that a recording wrote, not ${JSON.stringify(syncFile)}`)
  // The settings block's video and muxed file belong to new recordings, not to this old one.
  const { videoFile, muxedFile, muxedSuffix } = parseVideoFlags(args, { ...defaults, videoFile: null, muxedFile: null })
  const given = timingFlags(args, argv)
  checkAllVideos(given.allVideos === true, videoFile, muxedFile)
  return {
    kind: 'mux',
    mux: {
      syncFile,
      videoFile,
      muxedFile,
      muxedSuffix,
      ffmpeg: String(args.ffmpeg ?? defaults.ffmpeg),
      given,
      mux: !args.print, // someone who types mux wants the muxed file
      ...afterStopFlags(args, { ...defaults, plotFile: null }), // the settings block's plot is for new recordings
    },
  }
}

/** --all-videos finds the videos and names their muxed files itself. */
function checkAllVideos(allVideos: boolean, videoFile: string | null, muxedFile: string | null): void {
  if (allVideos && videoFile != null)
    throw new UsageError('--all-videos finds every recording the audio overlaps, --video names one: give one of them')
  if (allVideos && muxedFile != null)
    throw new UsageError('--all-videos names each muxed file after its video (+ --muxed-suffix): leave --muxed-out out')
}

/** --video, --muxed-out and --muxed-suffix, for a recording and for mux later alike. */
function parseVideoFlags(
  args: minimist.ParsedArgs,
  defaults: Pick<FileDefaults, 'videoFile' | 'muxedFile' | 'muxedSuffix'>,
) {
  const videoFile: string | null = args.video ?? defaults.videoFile
  if (videoFile != null && !/\.mp4$/i.test(videoFile))
    throw new UsageError(`--video ${JSON.stringify(videoFile)} is not an .mp4: give the TracktorLive recording`)
  const muxedFile: string | null = args['muxed-out'] ?? defaults.muxedFile
  if (muxedFile != null && !/\.(mp4|mkv)$/i.test(muxedFile))
    throw new UsageError(`--muxed-out ${JSON.stringify(muxedFile)} must end in .mp4 (or .mkv)`)
  const muxedSuffix = String(args['muxed-suffix'] ?? defaults.muxedSuffix)
  if (!/^[^\\/]*\.mp4$/i.test(muxedSuffix))
    throw new UsageError(`--muxed-suffix ${JSON.stringify(muxedSuffix)} must end in .mp4 and hold no slashes`)
  return { videoFile, muxedFile, muxedSuffix }
}

export function helpText(platform: Platform, defaults: FileDefaults = FILE_DEFAULTS): string {
  const format = (defaults.format ?? defaultFormat(platform)) as Format
  const shown = (key: keyof FileDefaults, row: SettingRow) =>
    key === 'format' || key === 'device'
      ? String(defaults[key] ?? (key === 'format' ? format : (defaultDevice(format) ?? row.unset)))
      : String(defaults[key] ?? row.unset)
  const rows = SETTING_ROWS.map(([key, row]) => {
    if (typeof row.value === 'boolean') {
      const on = Boolean(defaults[key])
      const flag = on ? `--no-${row.flag}` : `--${row.flag}`
      return `  ${flag.padEnd(18)} ${on ? 'do not ' : ''}${row.about}`
    }
    return `  ${`--${row.flag}=…`.padEnd(18)} ${row.about}\n${' '.repeat(21)}default: ${shown(key, row)}`
  })
  return [
    `${'Usage: record-audio [<feed_id>] [flags]'.padEnd(41)}record until ctrl-c, then the command that muxes in sync`,
    ...Object.entries(SUBCOMMANDS).map(
      ([name, sub]) => `       record-audio ${`${name} <${sub.file}>`.padEnd(20)} ${sub.what}`,
    ),
    `       record-audio ${'init'.padEnd(20)} a copy of this script here, to edit its settings and run with node`,
    '',
    'Records audio until ctrl-c, then prints the ffmpeg command that muxes it into the newest',
    'TracktorLive video of that feed, with the offset between them corrected.',
    '',
    ...rows,
    '  --json             print the sync record (JSON) on stdout instead of the command',
    '  --print            with mux: print the command, do not run it',
    '  --list-devices     list the capture devices of --format, the default marked *',
    '  -h, --help         this text',
    '  --version          the version',
    '',
    `List capture devices: ${listDevicesHint(format)}`,
  ].join('\n')
}

// ── Names and times on disk ──────────────────────────────────────────────────────────────────

const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ'
/** A TracktorLive recording is named <ULID>.mp4; nothing else in the folder is one. */
export const RECORDING_NAME = /^[0-7][0-9A-HJKMNP-TV-Z]{25}\.mp4$/i // a first digit above 7 overflows 48 bits

/** The 48-bit millisecond Unix time in a ULID's first 10 characters. */
export function ulidTimeMs(ulid: string): number {
  const head = ulid.slice(0, 10).toUpperCase()
  if (head.length !== 10 || head[0] > '7') throw new Error(`not a ULID: ${ulid}`)
  let ms = 0
  for (const char of head) {
    const digit = CROCKFORD.indexOf(char)
    if (digit < 0) throw new Error(`not a ULID: ${ulid}`)
    ms = ms * 32 + digit
  }
  return ms
}

/** TracktorLive's tracking CSV (-w) is named <ULID>.csv, minted just before the video's ULID. */
export const TRACKING_CSV_NAME = /^[0-7][0-9A-HJKMNP-TV-Z]{25}\.csv$/i

/** TracktorLive's newest recording among file names: the greatest ULID, not the newest mtime. */
export function newestRecording(names: string[]): string | undefined {
  return names
    .filter((name) => RECORDING_NAME.test(name))
    .sort((a, b) => (a.toUpperCase() < b.toUpperCase() ? -1 : a.toUpperCase() > b.toUpperCase() ? 1 : 0))
    .at(-1)
}

/** `name.wav` if free, else `name-2.wav`, `name-3.wav`, … */
export function freeName(file: string, exists: (file: string) => boolean): string {
  if (!exists(file)) return file
  const ext = path.extname(file)
  const stem = file.slice(0, file.length - ext.length)
  for (let n = 2; ; n++) if (!exists(`${stem}-${n}${ext}`)) return `${stem}-${n}${ext}`
}

/** The sync file belongs to its WAV: same name, -sync.json for .wav. */
export function syncFileFor(audioFile: string): string {
  return `${audioFile.replace(/\.wav$/i, '')}-sync.json`
}

/** A video's unfinished muxes among a folder's names: `<video stem>….partial-<PID>.mp4` (or .mkv), with the PID. */
export function unfinishedMuxes(names: string[], videoStem: string): { name: string; pid: number }[] {
  return names.flatMap((name) => {
    const pid = name.startsWith(videoStem) ? /\.partial-(\d+)\.(mp4|mkv)$/i.exec(name)?.[1] : undefined
    return pid ? [{ name, pid: Number(pid) }] : []
  })
}

export function muxedFileFor(videoFile: string, suffix: string): string {
  return videoFile.replace(/\.mp4$/i, '') + suffix
}

/** `20261127T222451Z`: a UTC time that sorts and fits in a file name on every system. */
export function fileTimestamp(date: Date): string {
  return date
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z')
}

export interface Candidate {
  file: string
  startEpochS: number
  endEpochS: number
  overlapS: number
}

/** Recordings by how much of the audio they cover, most first; the best covers some of it. */
export function rankByOverlap(
  videos: Omit<Candidate, 'overlapS'>[],
  audioStartEpochS: number,
  audioEndEpochS: number,
): Candidate[] {
  return videos
    .map((v) => ({
      ...v,
      overlapS: Math.max(0, Math.min(v.endEpochS, audioEndEpochS) - Math.max(v.startEpochS, audioStartEpochS)),
    }))
    .sort((a, b) => b.overlapS - a.overlapS || b.startEpochS - a.startEpochS)
}

/**
 * The line that refuses a video sharing no instant with the audio (the next trial's, another day's):
 * both spans on the wall clock, so the user sees which is where. null: they overlap, even partly
 * (the muxed file then has silence where the audio is missing).
 */
export function noOverlapLine(
  audio: { startEpochS: number; endEpochS: number },
  video: { startEpochS: number; endEpochS: number; file: string },
): string | null {
  if (audio.endEpochS > video.startEpochS && video.endEpochS > audio.startEpochS) return null
  const span = (a: { startEpochS: number; endEpochS: number }) =>
    `${new Date(a.startEpochS * 1000).toISOString()} → ${new Date(a.endEpochS * 1000).toISOString()}`
  return (
    `the audio (${span(audio)}) and the video ${video.file} (${span(video)}) do not overlap in time:` +
    " give the recording's video with --video, or, if this is it and its computer's clock is off, that" +
    ' difference with --clock-offset (or its first frame with --video-start)'
  )
}

/** While recording: the feed folder missing is said this long after the start (TracktorLive may start just after). */
export const FEED_CHECK_S = 3
/** A recording growing in another folder this long, and none new in the feed's: the feed id is likely wrong. */
export const WRONG_FEED_AFTER_S = 5

const RUNNING_HERE = ' (is it running here, with this feed id?)'

/** What the feed watch saw so far, for feedWarning. */
export interface FeedSeen {
  feed: string // the feed folder as the user named it
  elapsedS: number // since the recording started
  feedExists: boolean
  feedLive: boolean // a recording in it grows, or was minted since the audio started
  elsewhere: { dir: string; growingS: number }[] // other folders here with a recording growing now, and for how long
}

/**
 * The one early line a mistyped feed id (or no TracktorLive) gets while recording; null: nothing to say
 * yet. The recording goes on either way: the stop names the folder whose recording overlaps the audio.
 */
export function feedWarning(f: FeedSeen): string | null {
  const other = [...f.elsewhere].sort((a, b) => b.growingS - a.growingS)[0]
  const fix = other
    ? `: is the feed id ${path.basename(other.dir)}? (recording goes on; the stop gives its command)`
    : ''
  if (!f.feedExists && f.elapsedS >= FEED_CHECK_S)
    return other
      ? `⚠ No folder ${f.feed}/ here, but a recording grows in ${other.dir}/${fix}`
      : `⚠ No folder ${f.feed}/ here yet: TracktorLive writes ${f.feed}/<ULID>.mp4${RUNNING_HERE}`
  if (f.feedExists && !f.feedLive && other && other.growingS >= WRONG_FEED_AFTER_S)
    return `⚠ No new recording in ${f.feed}/, but one grows in ${other.dir}/${fix}`
  return null
}

// ── The capture ──────────────────────────────────────────────────────────────────────────────

/** ffmpeg's arguments for the capture. No -y: an existing file makes ffmpeg refuse (-n). */
export function captureArgs(s: { format: Format } & AudioInput, audioFile: string): string[] {
  // alsa and pulse stamp packets with epoch time; avfoundation and dshow do not, so there the
  // arrival time is the best epoch anchor ffmpeg can give (about one fragment late).
  const wallclock = s.format === 'avfoundation' || s.format === 'dshow' ? ['-use_wallclock_as_timestamps', '1'] : []
  // Asking the device for the rate and channel count avoids a resample; avfoundation takes no such options.
  const deviceSpec =
    s.format === 'avfoundation' ? [] : ['-sample_rate', String(s.sampleRate), '-channels', String(s.channels)]
  // dshow's default buffer is 500 ms, and the first packet's stamp is its end: keep it short and known.
  const bufferSpec = s.format === 'dshow' ? ['-audio_buffer_size', String(DSHOW_BUFFER_MS)] : []

  return [
    '-hide_banner',
    '-nostats',
    '-loglevel',
    'info', // info prints the input's start: time
    ...wallclock,
    '-f',
    s.format,
    ...deviceSpec,
    ...bufferSpec,
    '-i',
    s.device,
    '-map',
    '0:a:0',
    '-ar',
    String(s.sampleRate),
    '-ac',
    String(s.channels),
    '-c:a',
    'pcm_s16le',
    '-rf64',
    'auto',
    '-flush_packets',
    '1',
    '-f',
    'wav',
    '-y', // the name is this run's alone: reserveNames created it empty and exclusively (O_EXCL)
    audioFile,
  ]
}

/**
 * Between this process and ffmpeg, a one-thread shell: it dies with this process (parent-death
 * SIGKILL, sent once per thread of a dying Node, all but the first falling on a dead shell), and
 * its death is ffmpeg's one parent-death SIGTERM, the stop that finalizes the WAV. Not SIGINT: a
 * shell starts a background job with SIGINT ignored, so until ffmpeg sets its handlers (after
 * parsing its options) a SIGINT would be lost and ffmpeg left recording; a SIGTERM then ends it
 * (nothing is recorded yet), and after that ffmpeg takes it as the same stop as SIGINT. A shell trap
 * cannot make that one stop: dash runs a trap again inside itself when the signal repeats, and
 * sent ffmpeg two SIGINTs (which abort its writes) 1 kill in ~40. The shell prints ffmpeg's PID,
 * so every other stop goes to ffmpeg itself; SIGPIPE is ignored (ffmpeg inherits it), else with
 * this process dead ffmpeg's next log line would kill it before it writes the WAV's sizes.
 */
export const WATCHDOG_SH =
  'trap "" PIPE; exec 3<&0; "$@" <&3 3<&- >/dev/null & ff=$!; exec 3<&-; echo "$ff"; trap "" INT HUP TERM; wait "$ff"'

/** What runs before ffmpeg's own arguments: the watchdog where setpriv exists, else nothing. */
export function captureLauncher(setpriv: string | null): string[] {
  if (!setpriv) return []
  const watchdog = [setpriv, '--pdeathsig', 'KILL', '--', '/bin/sh', '-c', WATCHDOG_SH, 'record-audio-watchdog']
  return [...watchdog, setpriv, '--pdeathsig', 'TERM', '--']
}

/** What runs before the mux's ffmpeg: parent-death SIGKILL where setpriv exists, so no mux outlives a killed tool. */
export function muxLauncher(setpriv: string | null): string[] {
  return setpriv ? [setpriv, '--pdeathsig', 'KILL', '--'] : []
}

const HELPER_TIMEOUT_MS = 300_000 // ffprobe, the plot, the device list: one stuck (a hung mount, a device) is ended

/** A short-lived helper (ffprobe, the plot, the device list): bounded in time, and dying with this tool. */
async function runHelper(command: string, args: string[], timeoutMs = HELPER_TIMEOUT_MS) {
  const setpriv = process.platform === 'linux' ? await which('setpriv', { nothrow: true }) : null
  // exec: the PID the timeout kills is the helper's own, not a shell's around it.
  return $({ nothrow: true, quiet: true, timeout: timeoutMs, timeoutSignal: 'SIGKILL' })`exec ${muxLauncher(
    setpriv,
  )} ${command} ${args}`
}

export interface AudioStart {
  epochS: number
  // arrival-envelope: placed by the samples' arrival on disk, the device's stamp being impossible or absent
  source: 'ffmpeg-input-start' | 'ffmpeg-wallclock' | 'spawn-time' | 'arrival-envelope'
}

export const DSHOW_BUFFER_MS = 20
/** avfoundation has no buffer option; Core Audio delivers input in 512-frame buffers by default. */
export const AVFOUNDATION_PACKET_FRAMES = 512

/**
 * A wall-clock stamp is taken when a packet arrives, after its last sample was captured: the first
 * sample came one packet earlier.
 */
export function firstPacketS(format: Format, sampleRate: number): number {
  if (format === 'dshow') return DSHOW_BUFFER_MS / 1000
  if (format === 'avfoundation') return AVFOUNDATION_PACKET_FRAMES / sampleRate
  return 0 // alsa and pulse stamp the first sample itself
}

/** The epoch time of the first sample, from ffmpeg's `Input #0, <fmt>, from …` / `start: X` lines. */
export function parseInputStart(stderr: string, format: Format, sampleRate = 48000): AudioStart | undefined {
  const match = /^Input #0, (\w+), from [^\n]*\n(?:[^\n]*\n)*?\s*Duration: [^\n]*?start: (-?\d+(?:\.\d+)?)/m.exec(
    stderr,
  )
  if (!match) return undefined
  const epochS = Number(match[2])
  if (!(epochS > 1e9)) return undefined // not an epoch time: the device's own clock
  if (format === 'alsa' || format === 'pulse') return { epochS, source: 'ffmpeg-input-start' }
  return { epochS: epochS - firstPacketS(format, sampleRate), source: 'ffmpeg-wallclock' }
}

/**
 * How a capture ended. Before a stop request, any end is a failure. After one, ffmpeg exits 0
 * (`q`) or 255 (the SIGINT that also finalizes), but a write error while finishing (a full
 * disk, EIO) is only in its log: it still exits 0.
 */
export function captureOutcome(c: {
  stopRequestedEpochS: number | null
  exitCode: number | null
  signal: string | null
  log: string
  serverGone?: boolean // a pulse or alsa capture's sound server no longer answers (pactl info), asked once it ended
}): { ok: boolean; stoppedByItself: boolean; why: string } {
  if (c.stopRequestedEpochS === null) {
    // ffmpeg words a sound server that went away as its library's error: the server's absence is the reason.
    const why = c.signal
      ? `ffmpeg was killed (${c.signal})`
      : c.serverGone
        ? 'The sound server went away mid-recording (pactl info no longer answers): start it again' +
          ' (pulseaudio --start, or systemctl --user restart pipewire-pulse) and record again'
        : `ffmpeg stopped recording on its own (exit ${c.exitCode}): ${ffmpegErrorLine(c.log)}`
    return { ok: false, stoppedByItself: true, why }
  }
  const writeError = /^.*(Error writing trailer|Error closing file|Error muxing a packet|write_frame\(\)).*$/m.exec(
    c.log,
  )
  if (c.signal || (c.exitCode !== 0 && c.exitCode !== 255) || writeError) {
    const why = writeError ? writeError[0].trim() : `${c.signal ?? `exit ${c.exitCode}`}: ${ffmpegErrorLine(c.log)}`
    return { ok: false, stoppedByItself: false, why }
  }
  return { ok: true, stoppedByItself: false, why: '' }
}

/** The last line of ffmpeg's log that says what went wrong. */
export function ffmpegErrorLine(stderr: string): string {
  const lines = stderr
    .split(/[\r\n]+/)
    .map((line) => line.trim())
    .filter(Boolean)
  const noise = new RegExp(
    '^(Press \\[q\\]|Exiting normally|Guessed Channel|Stream mapping|Stream #|Input #|Output #|' +
      'Duration:|Metadata:|[A-Z]+\\s+:|size=|video:|Conversion failed)',
  )
  return lines.filter((line) => !noise.test(line)).at(-1) ?? lines.at(-1) ?? 'no message'
}

export interface WavInfo {
  dataOffset: number
  dataBytes: number
  channels: number
  sampleRate: number
  bitsPerSample: number
  finalized: boolean // false when ffmpeg never wrote the sizes back (killed, power cut)
  dataSizeWritten: boolean // the data chunk's size is set and fits the file (so it is kept by a repair)
  junkOffset: number | null // ffmpeg's -rf64 auto reserves a JUNK chunk that becomes ds64 past 4 GiB
}

const UNSET = 0xffffffff

/** Reads a RIFF or RF64 header from the first bytes of a WAV file of `fileBytes` bytes. */
export function parseWavHeader(header: Buffer, fileBytes: number): WavInfo {
  const id = header.toString('latin1', 0, 4)
  if (header.length < 12 || (id !== 'RIFF' && id !== 'RF64') || header.toString('latin1', 8, 12) !== 'WAVE')
    throw new Error('not a WAV file')
  let offset = 12
  let ds64: { riffBytes: number; dataBytes: number } | undefined
  let junkOffset: number | null = null
  let format: Pick<WavInfo, 'channels' | 'sampleRate' | 'bitsPerSample'> | undefined
  while (offset + 8 <= header.length) {
    const chunk = header.toString('latin1', offset, offset + 4)
    const size = header.readUInt32LE(offset + 4)
    if (chunk === 'ds64')
      ds64 = {
        riffBytes: Number(header.readBigUInt64LE(offset + 8)),
        dataBytes: Number(header.readBigUInt64LE(offset + 16)),
      }
    if (chunk === 'JUNK' && size >= 28) junkOffset = offset
    if (chunk === 'fmt ')
      format = {
        channels: header.readUInt16LE(offset + 10),
        sampleRate: header.readUInt32LE(offset + 12),
        bitsPerSample: header.readUInt16LE(offset + 22),
      }
    if (chunk === 'data') {
      if (!format) throw new Error('WAV data before its fmt chunk')
      const dataOffset = offset + 8
      const riffBytes = id === 'RF64' ? ds64?.riffBytes : header.readUInt32LE(4)
      const dataBytes = size === UNSET && id === 'RF64' ? ds64?.dataBytes : size
      const finalized =
        riffBytes !== undefined &&
        dataBytes !== undefined &&
        riffBytes !== UNSET &&
        dataBytes !== UNSET &&
        riffBytes + 8 <= fileBytes &&
        dataOffset + dataBytes <= fileBytes
      // A data size that was written and fits the file is kept even beside a wrong RIFF size: the chunks
      // after the data (a LIST) are not audio.
      const dataFits = dataBytes !== undefined && dataBytes !== UNSET && dataOffset + dataBytes <= fileBytes
      return {
        ...format,
        dataOffset,
        dataBytes: dataFits ? dataBytes : fileBytes - dataOffset,
        dataSizeWritten: dataFits,
        finalized,
        junkOffset,
      }
    }
    offset += 8 + size + (size % 2)
  }
  throw new Error('no data chunk in the first bytes of the WAV')
}

export interface WavRepair {
  kind: 'RIFF' | 'RF64'
  dataBytes: number
  dataKept?: boolean // the data chunk's own size was right: only the RIFF size is written
  patches: { offset: number; bytes: Buffer }[]
}

/**
 * The header writes that give an unfinalized WAV the sizes its file holds: RIFF when they fit in
 * 32 bits, else RF64 in the JUNK chunk ffmpeg reserved for it. A trailing partial sample frame is
 * left outside the data chunk. null: nothing to repair.
 */
export function wavRepair(header: Buffer, fileBytes: number): WavRepair | null {
  const info = parseWavHeader(header, fileBytes)
  const frameBytes = info.channels * (info.bitsPerSample / 8)
  // A frame of no bytes (0 bits or 0 channels) gives no length: the fmt chunk itself is wrong, whatever the size.
  if (!(Number.isInteger(frameBytes) && frameBytes > 0))
    throw new Error(
      `its fmt chunk says ${info.bitsPerSample} bits per sample and ${info.channels} channels:` +
        ' not a WAV a recording wrote',
    )
  if (info.finalized) return null
  const u32 = (n: number) => {
    const b = Buffer.alloc(4)
    b.writeUInt32LE(n)
    return b
  }
  if (info.dataSizeWritten) {
    // Only the RIFF size is wrong (it reaches past the file): it becomes the file's, the data and what follows kept.
    if (header.toString('latin1', 0, 4) !== 'RIFF' || fileBytes - 8 >= UNSET)
      throw new Error('its RF64 sizes disagree with the file, which this repair does not guess at')
    return {
      kind: 'RIFF',
      dataBytes: info.dataBytes,
      dataKept: true,
      patches: [{ offset: 4, bytes: u32(fileBytes - 8) }],
    }
  }
  const dataBytes = Math.floor((fileBytes - info.dataOffset) / frameBytes) * frameBytes
  const riffBytes = info.dataOffset + dataBytes - 8
  if (riffBytes < UNSET) {
    return {
      kind: 'RIFF',
      dataBytes,
      patches: [
        { offset: 0, bytes: Buffer.from('RIFF') },
        { offset: 4, bytes: u32(riffBytes) },
        { offset: info.dataOffset - 4, bytes: u32(dataBytes) },
      ],
    }
  }
  if (info.junkOffset === null) throw new Error('the WAV is past 4 GiB and has no JUNK chunk to hold RF64 sizes')
  const ds64 = Buffer.alloc(36)
  ds64.write('ds64', 0, 'latin1')
  ds64.writeUInt32LE(header.readUInt32LE(info.junkOffset + 4), 4) // the chunk keeps its size
  ds64.writeBigUInt64LE(BigInt(riffBytes), 8)
  ds64.writeBigUInt64LE(BigInt(dataBytes), 16)
  ds64.writeBigUInt64LE(BigInt(dataBytes / frameBytes), 24)
  ds64.writeUInt32LE(0, 32) // no table
  return {
    kind: 'RF64',
    dataBytes,
    patches: [
      { offset: 0, bytes: Buffer.from('RF64') },
      { offset: 4, bytes: u32(UNSET) },
      { offset: info.junkOffset, bytes: ds64 },
      { offset: info.dataOffset - 4, bytes: u32(UNSET) },
    ],
  }
}

export const AUDIO_SPAN_TOLERANCE_S = 0.05
/** How far a sound card's clock may be off when it could not be measured (USB microphones: 50–100 ppm). */
export const UNMEASURED_CLOCK_PPM = 200

/**
 * Samples written against wall time: at least every sample up to the stop request, at most what
 * arrived before ffmpeg exited, each within 50 ms.
 */
export function checkAudioSpan(
  audioS: number,
  wallToStopS: number,
  wallToExitS: number,
  clockPpm = UNMEASURED_CLOCK_PPM,
): { ok: boolean; wallSpanS: number } {
  // A card's crystal may be off by this much, which no absolute tolerance covers for an hour.
  const toleranceS = AUDIO_SPAN_TOLERANCE_S + clockPpm * 1e-6 * wallToStopS
  const ok = audioS >= wallToStopS - toleranceS && audioS <= wallToExitS + toleranceS
  return { ok, wallSpanS: wallToStopS }
}

// ── The sound card's clock ───────────────────────────────────────────────────────────────────

/** One look at the WAV while recording: when, and how many sample frames were on disk then. */
export interface RateObservation {
  epochS: number
  frames: number
}

export interface CardClock {
  rateHz: number // sample frames per wall-clock second
  ppm: number // how far the card's clock is off its nominal rate
  uncertaintyPpm: number
  spanS: number // the stretch of the recording it was measured over
}

export const MIN_CLOCK_SPAN_S = 10
/** Looks closer than this belong to one burst. */
export const BURST_GAP_S = 0.05
/**
 * How sharply a burst's lowest point can be trusted, at the least: a PulseAudio null sink's
 * bursty delivery moves it by ±5 ms; a real card's interrupts do better.
 */
export const ENVELOPE_FLOOR_S = 0.005

/**
 * The card's real rate. Samples are counted on its crystal, the start stamped on the system
 * clock; a sample is never on disk before it was captured, so the earliest arrivals follow the
 * card. Each burst of looks gives one point of that lower envelope (its lowest residual: look
 * time − start − frames / nominal rate); a line through the points gives the rate, their scatter
 * (at least ENVELOPE_FLOOR_S) its uncertainty. null: fewer than three bursts, or under 10 s apart.
 */
export function cardClock(looks: RateObservation[], startEpochS: number, nominalHz: number): CardClock | null {
  const bursts: RateObservation[][] = []
  for (const l of looks.filter((x) => x.frames > 0)) {
    const last = bursts.at(-1)
    if (last && l.epochS - last[last.length - 1].epochS <= BURST_GAP_S) last.push(l)
    else bursts.push([l])
  }
  // A burst that saw the file grow fewer than three times (a device delivering seconds at once)
  // has no envelope to find.
  const points = bursts
    .filter((b) => new Set(b.map((l) => l.frames)).size >= 3)
    .map((b) => {
      const residual = (l: RateObservation) => l.epochS - startEpochS - l.frames / nominalHz
      const best = b.reduce((x, y) => (residual(y) < residual(x) ? y : x))
      return { xS: best.frames / nominalHz, yS: residual(best), epochS: best.epochS }
    })
  // Three bursts at least (40 s and more): two always lie on a line, and only a third shows how
  // far the envelope scatters (a loaded machine moves a null sink's by more than the floor).
  if (points.length < 3) return null
  const spanS = points[points.length - 1].epochS - points[0].epochS
  if (spanS < MIN_CLOCK_SPAN_S) return null
  const meanX = points.reduce((sum, p) => sum + p.xS, 0) / points.length
  const meanY = points.reduce((sum, p) => sum + p.yS, 0) / points.length
  const sxx = points.reduce((sum, p) => sum + (p.xS - meanX) ** 2, 0)
  const slope = points.reduce((sum, p) => sum + (p.xS - meanX) * (p.yS - meanY), 0) / sxx
  const scatter =
    points.length > 2
      ? Math.sqrt(
          points.reduce((sum, p) => sum + (p.yS - meanY - slope * (p.xS - meanX)) ** 2, 0) / (points.length - 2),
        )
      : 0
  // residual = t × (nominal / rate − 1) + latency, with t the samples' nominal time
  const rateHz = nominalHz / (1 + slope)
  return {
    rateHz,
    ppm: (rateHz / nominalHz - 1) * 1e6,
    uncertaintyPpm: (Math.max(scatter, ENVELOPE_FLOOR_S) / Math.sqrt(sxx)) * 1e6,
    spanS,
  }
}

/**
 * The card's clock against the nominal rate, as a factor to apply to the wall-clock timeline:
 * 1 unless the measurement is clearly off (three times its uncertainty) and worth a millisecond
 * over the recording.
 */
export function clockRatio(
  clock: Pick<CardClock, 'rateHz' | 'ppm' | 'uncertaintyPpm'> | null,
  nominalHz: number,
  durationS: number,
): number {
  if (!clock) return 1
  const significant = Math.abs(clock.ppm) > 3 * clock.uncertaintyPpm && Math.abs(clock.ppm) * 1e-6 * durationS >= 1e-3
  return significant ? clock.rateHz / nominalHz : 1
}

type ClockFields = Pick<
  SyncRecord,
  'audioSampleRate' | 'audioClockHz' | 'audioClockUncertaintyPpm' | 'audioClockRatio' | 'audioDurationS'
>

/**
 * Another device's clock ratio for the mux, where the first device's card sets the timeline: what
 * matters is how the two cards differ, so the test is on that difference with both uncertainties.
 * Judged alone, a card measured +30 ± 9 ppm (corrected) beside one at +25 ± 9 ppm (not: under 3σ)
 * would play the second 30 ppm slow against the first, 108 ms an hour off its own measurement.
 */
export function otherClockRatio(first: ClockFields, other: ClockFields): number {
  const own = other.audioClockRatio ?? 1
  if (first.audioClockHz == null || other.audioClockHz == null) return own
  const relative = other.audioClockHz / other.audioSampleRate / (first.audioClockHz / first.audioSampleRate)
  const uncertaintyPpm = Math.hypot(first.audioClockUncertaintyPpm ?? 0, other.audioClockUncertaintyPpm ?? 0)
  const ppm = Math.abs(relative - 1) * 1e6
  const durationS = other.audioDurationS ?? 0
  const significant = ppm > 3 * uncertaintyPpm && ppm * 1e-6 * durationS >= 1e-3
  return (first.audioClockRatio ?? 1) * (significant ? relative : 1)
}

// ── The first sample, checked ────────────────────────────────────────────────────────────────
// ffmpeg's start stamp is the sound server's latency report, wrong by seconds on some sources (a
// pipe source, Bluetooth, network). Its witness: a sample is never on disk before it was captured.

/**
 * How long after the first data the WAV's writes are watched as they happen, and over which the
 * envelope is taken: long enough for a start-up burst to drain and a second of steady delivery to
 * follow, short enough that an unmeasured card clock (200 ppm) moves it by under a millisecond.
 */
export const ARRIVAL_WINDOW_S = 3
/**
 * The longest a correct stamp can lie before the envelope: the samples wait in a queue between the
 * device and the WAV that ffmpeg's start leaves behind and then reads at the device's pace (measured
 * here on a null sink's monitor: 26–480 ms, steady through the recording), and PulseAudio hands a
 * record stream up to 2 s at once (its fragment when a client asks for none, PULSE_LATENCY_MSEC=2000).
 * A stamp earlier than this claims a queue no capture chain holds.
 */
export const MAX_DELIVERY_LATENCY_S = 2.5
/** How sharp the envelope is once it is: Date.now()'s millisecond and a write's ~1 ms to the WAV. */
export const ENVELOPE_RESOLUTION_S = 0.002
/**
 * The longest queue a local capture showed between its device and the WAV (480 ms on a null sink's
 * monitor): a stamp earlier than the envelope by more is as likely an early stamp (a pipe source's
 * were −264 ms) as a queue, and the files cannot tell which.
 */
export const LOCAL_QUEUE_S = 0.5
/**
 * PipeWire hands a sample to a PulseAudio client a graph cycle or more after it reached the server
 * (through pipewire-pulse, measured here: 4.7–18 ms after a pipe source's write at 10.7 ms cycles):
 * there the arrival bounds the first sample's capture from above by up to three cycles less sharply.
 */
export const PIPEWIRE_DELIVERY_S = 0.034
/**
 * PipeWire's graph cycle while the tool recorded here (pw-profiler: the driver's 10.666 ms period, a
 * quantum of 512 frames at 48 kHz). A sample waits in the server for the next cycle, up to one, half a
 * cycle on average: the envelope lies that much late on average, which a start placed by it has taken off.
 */
export const PIPEWIRE_CYCLE_S = 512 / 48000
/** Fewer deliveries than this in the window (a device handing over seconds at once): too loose to overrule a stamp. */
export const MIN_DELIVERIES = 3

export interface ArrivalEnvelope {
  epochS: number // an upper bound on the first sample's capture time
  deliveries: number // distinct sizes the WAV was seen at within the window
  spanS: number // from the first data seen to the last look used
}

/**
 * The lower envelope of (when the WAV was seen holding n frames − (n − 1) / rate) over the first
 * ARRIVAL_WINDOW_S of data: the newest sample on disk was captured before it was seen, and those
 * before it one sample period apart each, so the first was captured no later than this. Looks may
 * come in any order; null: no data seen.
 */
export function arrivalEnvelope(
  looks: RateObservation[],
  rateHz: number,
  windowS = ARRIVAL_WINDOW_S,
): ArrivalEnvelope | null {
  const seen = looks.filter((l) => l.frames > 0).sort((a, b) => a.epochS - b.epochS)
  if (!seen.length) return null
  const within = seen.filter((l) => l.epochS <= seen[0].epochS + windowS)
  const epochS = within.reduce((low, l) => Math.min(low, l.epochS - (l.frames - 1) / rateHz), Number.POSITIVE_INFINITY)
  const deliveries = new Set(within.map((l) => l.frames)).size
  return { epochS, deliveries, spanS: (within.at(-1) as RateObservation).epochS - seen[0].epochS }
}

/**
 * plausible: the stamp is used, at most LOCAL_QUEUE_S below the envelope (a queue) or within the
 * envelope's resolution above it. undecided: the stamp is used, but it lies LOCAL_QUEUE_S to
 * MAX_DELIVERY_LATENCY_S below the envelope: a long queue or an early stamp, which nothing decides.
 * stamp-late: the stamp is after the envelope, which is
 * impossible: the envelope is used. stamp-early: the stamp claims more delivery than any queue
 * holds: the envelope is used (see checkAudioStart). loose: that, but the envelope was made of too
 * few deliveries to tell: the stamp is used. no-stamp: ffmpeg printed none, the envelope is used.
 * unchecked: no data was seen while recording: the stamp is used.
 */
export const START_CHECK_KINDS = [
  'plausible',
  'undecided',
  'stamp-late',
  'stamp-early',
  'loose',
  'no-stamp',
  'unchecked',
] as const
export type StartCheckKind = (typeof START_CHECK_KINDS)[number]

export interface StartCheck {
  start: AudioStart // the one used
  kind: StartCheckKind
  stampEpochS: number | null // ffmpeg's stamp (null: none; the spawn time is no stamp)
  envelopeEpochS: number | null
  deliveryLatencyS: number | null // envelope − stamp: how long the freshest sample took if the stamp is right
  uncertaintyS: number | null // how far the truth may lie from the start used; null: unknown
  envelopeBiasS?: number // placed by the envelope: how much earlier than it (PipeWire: half a graph cycle)
}

/**
 * The stamp checked against the arrival envelope. A stamp later than the envelope is impossible
 * (a pipe source's stamps were 0.4–9 s late, its samples queued before the capture): the envelope
 * is used. A stamp below the envelope is a queue between the device and the WAV, which the files
 * cannot tell from an early stamp: the stamp is used, and the uncertainty spans the two. Below it by
 * more than MAX_DELIVERY_LATENCY_S, no queue explains it: the envelope, which cannot be early, is
 * used, and the uncertainty covers the stamp (a network stream that really delays its samples by
 * that much is placed late by it, which the note says).
 */
export function checkAudioStart(
  stamp: AudioStart,
  envelope: ArrivalEnvelope | null,
  deliveryS = 0,
  envelopeBiasS = 0, // the envelope's average lateness on this path (PipeWire: half a graph cycle)
): StartCheck {
  const stampEpochS = stamp.source === 'spawn-time' ? null : stamp.epochS
  const none = { stampEpochS, envelopeEpochS: null, deliveryLatencyS: null }
  if (!envelope) return { start: stamp, kind: 'unchecked', uncertaintyS: null, ...none }
  const start = { epochS: envelope.epochS - envelopeBiasS, source: 'arrival-envelope' as const }
  const byEnvelope = { start, ...(envelopeBiasS ? { envelopeBiasS } : {}) }
  // The envelope is an upper bound: the truth is earlier by the path's own delivery (deliveryS: PipeWire's cycles).
  const envelopeUncertaintyS = ENVELOPE_RESOLUTION_S + deliveryS
  // Its bias taken off, the truth still lies from the envelope to deliveryS before it: the farther side's ±.
  const placedUncertaintyS = ENVELOPE_RESOLUTION_S + Math.max(deliveryS - envelopeBiasS, envelopeBiasS)
  const facts = { stampEpochS, envelopeEpochS: envelope.epochS }
  // The spawn time is no stamp: the process started before the device opened, and the envelope is sharper.
  if (stampEpochS === null)
    return { ...byEnvelope, kind: 'no-stamp', uncertaintyS: placedUncertaintyS, deliveryLatencyS: null, ...facts }
  const deliveryLatencyS = envelope.epochS - stampEpochS
  const withFacts = { ...facts, deliveryLatencyS }
  if (deliveryLatencyS < -ENVELOPE_RESOLUTION_S)
    return { ...byEnvelope, kind: 'stamp-late', uncertaintyS: placedUncertaintyS, ...withFacts }
  if (deliveryLatencyS <= MAX_DELIVERY_LATENCY_S) {
    const uncertaintyS = Math.max(Math.abs(deliveryLatencyS), envelopeUncertaintyS)
    const kind = deliveryLatencyS <= LOCAL_QUEUE_S ? 'plausible' : 'undecided'
    return { start: stamp, kind, uncertaintyS, ...withFacts }
  }
  if (envelope.deliveries < MIN_DELIVERIES)
    return { start: stamp, kind: 'loose', uncertaintyS: deliveryLatencyS, ...withFacts }
  return { ...byEnvelope, kind: 'stamp-early', uncertaintyS: deliveryLatencyS, ...withFacts }
}

/**
 * A stamp after the samples' arrival by less than this is the two witnesses agreeing within what
 * changes nothing (the null sink's stamp came 1–8 ms after it, a frame is 33 ms): the arrival is used
 * all the same, and only --verbose says so.
 */
export const STAMP_LATE_MINOR_S = 0.01

/** Whether the stamp and the arrival agree: a plausible stamp, or one late by a few ms. */
export function startAgreed(r: { audioStartCheck: StartCheckKind | null; audioDeliveryLatencyS: number | null }) {
  const minorLate = r.audioStartCheck === 'stamp-late' && -(r.audioDeliveryLatencyS ?? -1) < STAMP_LATE_MINOR_S
  return r.audioStartCheck === 'plausible' || minorLate
}

/** The one line the summary says of a check, or null when there is nothing to say. */
export function describeStartCheck(c: StartCheck): string | null {
  const ms = (s: number) => `${Math.abs(s * 1000).toFixed(0)} ms`
  // PipeWire's: its average wait for the graph's next cycle taken off the arrival.
  const biased = c.envelopeBiasS
    ? `, less ${ms(c.envelopeBiasS)} (half a PipeWire graph cycle, their average wait), ± ${ms(c.uncertaintyS ?? 0)}`
    : null
  if (c.kind === 'no-stamp')
    return (
      '⚠ ffmpeg printed no start time: the first sample is placed by the samples’ arrival' +
      (biased ?? ` (within ${ms(ENVELOPE_RESOLUTION_S)} if they reach the WAV as fast as a local device's do)`) +
      '.'
    )
  if (c.deliveryLatencyS === null) return null
  if (c.kind === 'stamp-late')
    return (
      `⚠ The device's start stamp was ${ms(c.deliveryLatencyS)} late (its samples were on disk before it):` +
      ` the first sample is placed by their arrival instead` +
      `${biased ?? ` (no later; earlier by ${ms(c.uncertaintyS ?? 0)} at most)`}.`
    )
  if (c.kind === 'undecided' || c.kind === 'loose')
    return (
      `⚠ The device's start stamp lies ${ms(c.deliveryLatencyS)} before its samples reached the WAV: a queue that` +
      ' long, or a stamp that early; nothing in the files decides which (the stamp is used; --events does).'
    )
  if (c.kind === 'stamp-early')
    return (
      `⚠ The device's start stamp says its samples took ${ms(c.deliveryLatencyS)} to reach the WAV, more than any` +
      ` queue holds (${ms(MAX_DELIVERY_LATENCY_S)}): the first sample is placed by their arrival; a source that` +
      ` really delays its samples (a network stream) began up to ${ms(c.deliveryLatencyS)} earlier (--events tells).`
    )
  return null
}

// ── The video ────────────────────────────────────────────────────────────────────────────────

/**
 * An mp4 is finished when a `moov` box lies wholly inside it. While OpenCV writes, the file is
 * ftyp, free, mdat (size 0: to end of file) and no moov. `readAt(offset, 16)` returns the bytes there.
 */
export function hasMoov(fileBytes: number, readAt: (offset: number, length: number) => Buffer): boolean {
  let offset = 0
  while (offset + 8 <= fileBytes) {
    const head = readAt(offset, 16)
    if (head.length < 8) return false
    let size = head.readUInt32BE(0)
    const type = head.toString('latin1', 4, 8)
    if (size === 1) {
      if (head.length < 16) return false
      size = Number(head.readBigUInt64BE(8))
    } else if (size === 0) {
      size = fileBytes - offset
    }
    if (size < 8) return false
    if (type === 'moov') return offset + size <= fileBytes
    offset += size
  }
  return false
}

// The boxes an mp4 may begin with (ISO BMFF; QuickTime's wide and free before mdat).
const MP4_FIRST_BOXES = ['ftyp', 'styp', 'free', 'skip', 'wide', 'mdat', 'moov', 'pnot', 'uuid']
// An mp4 writer puts its first box down as it opens the file: one empty this long is no recording being written.
export const EMPTY_VIDEO_S = 5

/**
 * Why a file named like a recording is no mp4 at all (so no wait can make it one), or null: its first
 * bytes are not an mp4 box, or it has stayed under a box's 8 bytes for EMPTY_VIDEO_S.
 */
export function notMp4Reason(head: Buffer, fileBytes: number, unchangedS: number): string | null {
  if (fileBytes < 8)
    return unchangedS >= EMPTY_VIDEO_S ? `it holds ${fileBytes} bytes, unchanged for ${Math.floor(unchangedS)} s` : null
  if (head.length < 8) return null
  const type = head.toString('latin1', 4, 8)
  return MP4_FIRST_BOXES.includes(type) ? null : `its first bytes are no mp4 box: ${JSON.stringify(type)}, no ftyp`
}

/**
 * A file opened to read, or null when it is not a regular file: a FIFO, a device or a socket put in a
 * folder this tool reads would block the event loop, and with it every stop, on the open or the read.
 * Judged by stat before the open, opened non-blocking, judged again by fstat (it may have been swapped).
 */
export function openRegular(file: string): number | null {
  if (!fs.statSync(file).isFile()) return null
  const fd = fs.openSync(file, fs.constants.O_RDONLY | (fs.constants.O_NONBLOCK ?? 0))
  if (fs.fstatSync(fd).isFile()) return fd
  fs.closeSync(fd)
  return null
}

/** A regular file's text, at most maxBytes of it; null when it is not a regular file (see openRegular). */
export function readRegular(file: string, maxBytes: number): string | null {
  const fd = openRegular(file)
  if (fd == null) return null
  try {
    const buffer = Buffer.alloc(Math.min(fs.fstatSync(fd).size, maxBytes))
    return buffer.subarray(0, fs.readSync(fd, buffer, 0, buffer.length, 0)).toString('utf8')
  } finally {
    fs.closeSync(fd)
  }
}

/** Whether a path is a regular file (a FIFO or a folder named like a recording is not one). */
export function isRegularFile(file: string): boolean {
  try {
    return fs.statSync(file).isFile()
  } catch {
    return false
  }
}

/** notMp4Reason of a file on disk (read bounded, regular files only); null when it may be an mp4. */
export function notMp4File(file: string): string | null {
  const fd = openRegular(file)
  if (fd == null) return null
  try {
    const stat = fs.fstatSync(fd)
    const head = Buffer.alloc(8)
    const read = fs.readSync(fd, head, 0, 8, 0)
    return notMp4Reason(head.subarray(0, read), stat.size, (Date.now() - stat.mtimeMs) / 1000)
  } finally {
    fs.closeSync(fd)
  }
}

export function isFinalizedMp4(file: string): boolean {
  const fd = openRegular(file)
  if (fd == null) return false
  try {
    const fileBytes = fs.fstatSync(fd).size
    return hasMoov(fileBytes, (offset, length) => {
      const buffer = Buffer.alloc(length)
      return buffer.subarray(0, fs.readSync(fd, buffer, 0, length, offset))
    })
  } finally {
    fs.closeSync(fd)
  }
}

// ── The video's clock ────────────────────────────────────────────────────────────────────────

export interface VideoClues {
  ulidEpochS: number // minted when the writer opened: before the first frame
  userStartEpochS: number | null // --video-start
  timesync: TimesyncSpan | null // TracktorLive's timesync cassette: epoch times of the frames, first to last
  clockOffsetS: number // added to every time above (and the mtime)
  frames: number | null // from ffprobe, once the mp4 is finished
  nominalFps: number | null // the rate the mp4 claims
  mtimeEpochS: number | null // ≈ the last frame: the writer's release adds the moov then
  driftFix: boolean
  frameClock?: TrackedClock | null // from TracktorLive's tracking CSV: the camera's own timing
  frameClockRefused?: FrameClockRefused | null // the CSV's read times, refused as a clock
  cameraLatencyS?: number // the camera's delay, which no file holds: taken off every video time
}

/** A frame clock with where its times lie on the wall clock. */
export interface TrackedClock extends FrameClock {
  epoch: CsvEpoch
  lastReadEpochS: number // the last row's time on the wall clock
}

export interface VideoTiming {
  startEpochS: number
  source: 'video-start-flag' | 'tracking-csv' | 'timesync' | 'ulid'
  uncertaintyS: number
  clock: TrackedClock | null // the frame clock used: the tracking CSV's or the timesync rows'
  nominalDurationS: number | null // D = frames / nominal fps
  realSpanS: number | null // S: the wall-clock time those frames took
  spanSource: 'tracking-csv' | 'timesync' | 'mtime' | null
  driftPpm: number | null
  driftAtEndMs: number | null
  itsscale: number | null // S / D when the drift is corrected
  driftReason: string | null // why the drift was or was not corrected, for the summary
  warnings: string[]
  anchorsApartS?: number[] // each disagreeing anchor's first frame − the one used (the bounds cover each)
}

export const MAX_MTIME_DRIFT = 0.05

/**
 * The video's first frame on the audio's clock, how far to trust it, and its drift. Anchors, best
 * first: the user's time; the tracking CSV's frame clock (when the camera took frame 0); the same
 * clock from the timesync file's rows; the ULID (minted before the first frame is read). The real
 * span comes from the frame clock, else from start to mtime.
 */
export function videoTiming(c: VideoClues): VideoTiming {
  const warnings: string[] = []
  const anchor = videoAnchor(c, warnings)
  const nominalDurationS = c.frames && c.nominalFps ? c.frames / c.nominalFps : null
  const anchorsApartS: number[] = []
  const span = realSpan(c, anchor, nominalDurationS, warnings, anchorsApartS)
  const drift = videoDrift(c, anchor, span, nominalDurationS, warnings)
  return {
    startEpochS: anchor.anchorEpochS - (c.cameraLatencyS ?? 0),
    source: anchor.source,
    uncertaintyS: anchor.uncertaintyS,
    clock: anchor.clock,
    nominalDurationS,
    ...span,
    ...drift,
    warnings,
    anchorsApartS,
  }
}

type Anchor = ReturnType<typeof videoAnchor>

/** The first frame's anchor, best first; a timesync file of another run, or a refused clock, warned of. */
function videoAnchor(c: VideoClues, warnings: string[]) {
  const framePeriodS = c.nominalFps ? 1 / c.nominalFps : null
  const ulidStart = c.ulidEpochS + c.clockOffsetS
  let timesync = c.timesync
  // The ULID is minted before the first frame, and start hooks take seconds at most: a file far
  // off belongs to another run of the same feed (it is rewritten at every stop).
  if (timesync && (timesync.firstS < c.ulidEpochS - 1 || timesync.firstS > c.ulidEpochS + 10)) {
    const apartS = (timesync.firstS - c.ulidEpochS).toFixed(1)
    warnings.push(
      `the timesync file starts ${apartS} s from the video's ULID, so it belongs to another recording: not used`,
    )
    timesync = null
  }
  const timesyncStart = timesync ? timesync.firstS + c.clockOffsetS : null
  const fromTimesync = !c.frameClock && timesync && c.nominalFps ? timesyncClock(timesync, c.nominalFps) : null
  const clock = c.frameClock ?? (fromTimesync && !('refused' in fromTimesync) ? fromTimesync : null)
  // A refused clock's read times are a burst or a lagging reader: the mtime's span would hold them too.
  const refused = clock
    ? null
    : (c.frameClockRefused ?? (fromTimesync && 'refused' in fromTimesync ? fromTimesync : null))
  if (refused)
    warnings.push(describeRefusedClock(refused, c.frameClockRefused ? 'the tracking CSV' : 'the timesync file'))
  const clockSource = clock?.epoch.source === 'timesync' ? ('timesync' as const) : ('tracking-csv' as const)
  const [anchorEpochS, source, uncertaintyS] =
    c.userStartEpochS != null
      ? [c.userStartEpochS + c.clockOffsetS, 'video-start-flag' as const, 0]
      : clock
        ? [clock.firstFrameEpochS + c.clockOffsetS, clockSource, clock.epoch.uncertaintyS + FRAME_ENVELOPE_S]
        : timesyncStart != null
          ? [timesyncStart, 'timesync' as const, framePeriodS ?? 0.04] // too few rows for a clock: the first read
          : // the first frame follows by about a camera frame, more if start hooks run
            [ulidStart, 'ulid' as const, framePeriodS ?? 0.04]
  return { timesync, clock, refused, clockSource, anchorEpochS, source, uncertaintyS }
}

/** The wall-clock time the frames took: the frame clock's, the timesync rows', else first frame → mtime. */
function realSpan(c: VideoClues, a: Anchor, nominalDurationS: number | null, warnings: string[], apart: number[]) {
  const framePeriodS = c.nominalFps ? 1 / c.nominalFps : null
  const { clock, timesync } = a
  let realSpanS: number | null = null
  let spanSource: VideoTiming['spanSource'] = null
  if (clock && c.frames) {
    realSpanS = c.frames * clock.framePeriodS
    spanSource = a.clockSource
    if (c.mtimeEpochS != null && clock.epoch.source === 'watched' && framePeriodS != null) {
      const apartS = c.mtimeEpochS - clock.lastReadEpochS
      if (Math.abs(apartS) > 2 * framePeriodS) {
        warnings.push(
          `the video's mtime is ${apartS.toFixed(2)} s off its last frame in the tracking CSV (copied or touched?):` +
            ' the CSV is used',
        )
        apart.push(apartS) // the mtime as the last frame moves the whole frame clock, its first frame too
      }
    }
  } else if (timesync && timesync.rows >= 2 && c.frames) {
    const realFps = (timesync.rows - 1) / (timesync.lastS - timesync.firstS)
    realSpanS = c.frames / realFps
    spanSource = 'timesync'
  } else if (c.mtimeEpochS != null && nominalDurationS != null && c.frames && c.frames >= 2) {
    // The mtime marks the last frame: first frame → mtime is N − 1 frame periods, not N.
    realSpanS = ((c.mtimeEpochS + c.clockOffsetS - a.anchorEpochS) * c.frames) / (c.frames - 1)
    spanSource = 'mtime'
  }
  if (c.frames && c.mtimeEpochS != null && framePeriodS != null && spanSource === 'mtime') {
    const gapS = c.mtimeEpochS + c.clockOffsetS - (c.frames - 1) * framePeriodS - a.anchorEpochS
    if (Math.abs(gapS) > framePeriodS) {
      apart.push(gapS) // the first frame that much later, or a slower camera: nothing tells
      warnings.push(
        `the video's end (mtime − (frames − 1)/fps) puts its start ${(gapS * 1000).toFixed(0)} ms after the` +
          ` ${a.source === 'ulid' ? 'ULID' : 'start given'}: either the camera ran` +
          ` ${((gapS / ((c.frames - 1) * framePeriodS)) * 100).toFixed(2)} % slower than` +
          ` its nominal ${c.nominalFps} fps,` +
          ' or the first frame came that much later; a timesync file tells them apart',
      )
    }
  }
  return { realSpanS, spanSource }
}

/** The drift of the real span from the nominal one, and whether -itsscale corrects it (and why, or why not). */
function videoDrift(
  c: VideoClues,
  a: Anchor,
  { realSpanS, spanSource }: ReturnType<typeof realSpan>,
  nominalDurationS: number | null,
  warnings: string[],
) {
  const framePeriodS = c.nominalFps ? 1 / c.nominalFps : null
  const none = { driftPpm: null, driftAtEndMs: null, itsscale: null, driftReason: null }
  if (realSpanS == null || nominalDurationS == null || framePeriodS == null) return none
  // From the mtime, S also holds any lateness of the first frame; stretching to it still anchors
  // the video's end to the truth and never makes the start worse. Past 5 % the mtime is more
  // likely not the recording's end at all (a copied file): then nothing is corrected.
  const plausible = spanSource !== 'mtime' || Math.abs(realSpanS / nominalDurationS - 1) <= MAX_MTIME_DRIFT
  if (!plausible)
    warnings.push(
      `the mtime puts the video's end ${(realSpanS - nominalDurationS).toFixed(1)} s off its nominal length,` +
        " too far for a camera's drift (was the file copied?): no drift correction;" +
        ' a timesync file gives the real rate',
    )
  const beyondAFrame = Math.abs(realSpanS - nominalDurationS) > framePeriodS
  const fixed = c.driftFix && plausible && beyondAFrame && !a.refused
  const driftReason = !beyondAFrame
    ? 'within a frame, nothing to correct'
    : a.refused
      ? 'not corrected: the frame times show no steady rate near the nominal one'
      : !plausible
        ? `not corrected: past ${MAX_MTIME_DRIFT * 100} % the mtime is not the recording's end`
        : !c.driftFix
          ? 'not corrected (--no-drift-fix)'
          : spanSource === 'tracking-csv'
            ? "the tracking CSV's frame clock gives the camera's real rate"
            : spanSource === 'timesync'
              ? "the timesync rows' frame clock gives the camera's real rate"
              : "the video's end anchored to its mtime (a copied or touched file misleads this; --no-drift-fix)"
  return {
    driftPpm: (realSpanS / nominalDurationS - 1) * 1e6,
    driftAtEndMs: (realSpanS - nominalDurationS) * 1000,
    itsscale: fixed ? realSpanS / nominalDurationS : null,
    driftReason,
  }
}

/** ffprobe's `30/1` or `30000/1001` as a number. */
export function parseRate(text: string | undefined): number | null {
  const [num, den = '1'] = String(text ?? '').split('/')
  const rate = Number(num) / Number(den)
  return Number.isFinite(rate) && rate > 0 ? rate : null
}

// ── The frame clock ──────────────────────────────────────────────────────────────────────────

/**
 * The `time` column of TracktorLive's tracking CSV (`<feed>/<ULID>.csv`, written with -w): one row
 * per video frame, in the same order, seconds since the server's start. A partial last line (the
 * file still being written) is left out.
 */
export function parseTrackingTimes(text: string): number[] {
  const lines = text.split('\n')
  if (!/^time(,|$)/.test(lines[0] ?? '')) throw new Error('no time column')
  if (!text.endsWith('\n')) lines.pop()
  const times: number[] = []
  for (const line of lines.slice(1)) {
    if (!line) continue
    const comma = line.indexOf(',')
    const time = Number(comma < 0 ? line : line.slice(0, comma))
    if (!Number.isFinite(time)) throw new Error(`a row without a time: ${line.slice(0, 40)}`)
    times.push(time)
  }
  return times
}

/** A file source's rows are k / fps exactly: no clock at all. */
export function isFileSourceClock(times: number[], nominalFps: number): boolean {
  return times.length > 1 && times.every((t, k) => Math.abs(t - k / nominalFps) < 1e-6)
}

/** How sharply the read times' envelope places frame 0: the bench's spread with the real TracktorLive, 2 ms. */
export const FRAME_ENVELOPE_S = 0.002

export interface FrameClock {
  // frame 0's capture time on the wall clock, plus the shortest capture → stamp time (TracktorLive stamps a
  // frame after tracking it) and not the camera's own latency: --camera-latency takes both off
  firstFrameEpochS: number
  framePeriodS: number // the camera's real period
  fps: number
  bufferedFrames: number // read in a burst from the camera's buffer at the start
  firstReadLateS: number // how long frame 0 waited in that buffer before it was read
  offLineFrames: number // later frames read more than two periods late: stalls, drops
  frames: number
}

/** A frame clock refused: the read times show no steady rate near the nominal one (a burst, not a camera). */
export interface FrameClockRefused {
  refused: 'implausible-rate'
  longestRunFps: number // the rate of the read times' longest straight run (the burst's, or the camera's)
  onLineFrames: number // the most frames read on any line within the bound (MIN_STEADY_FRAMES are needed)
  nominalFps: number
}

/**
 * Past 5 % off the nominal fps the lower envelope is a burst or a reader falling behind, not a
 * camera: a crystal keeps within 0.01 %, NTSC's 29.97 for 30 is 0.1 %, a 25 fps camera in a 24 fps
 * params file 4 %. The same bound as the mtime's (MAX_MTIME_DRIFT).
 */
export const MAX_CAMERA_RATE_ERROR = 0.05

/**
 * A camera's line is believed when this many frames were read on it (within ON_LINE_PERIODS): a third
 * of a second at 30 fps. A reader that falls behind its camera for a whole run (TracktorLive under
 * load, catching up in bursts only now and then) touches its envelope at a handful of points, and the
 * edge between two of them can take any slope, some near the nominal one.
 */
export const MIN_STEADY_FRAMES = 10

/** On the line: read within a quarter period of it (tracking's jitter on a light load is a few ms). */
export const ON_LINE_PERIODS = 0.25

/**
 * A frame is never read before the camera took it, so every read time lies on or above the line of
 * the capture times, and the camera's line is a supporting line of the points (frame index, read
 * time) from below: an edge of their lower convex hull. A burst of buffered frames (read a few ms
 * apart), stalls and drops all lie above it, whatever their length. Of the hull's edges whose rate is
 * within MAX_CAMERA_RATE_ERROR of the nominal one, the line is the one that touches the most points
 * (read within ON_LINE_PERIODS of it): the frames TracktorLive read as soon as the camera sent them,
 * which a camera's steady part has in every stretch and a burst's or a lagging reader's envelope has
 * only at its ends; ties go to the longer edge. Its value at frame 0 is frame 0's capture time, plus
 * the shortest delay from capture to TracktorLive's stamp (which comes after tracking the frame).
 * null: too few frames to tell; refused: no such line touching MIN_STEADY_FRAMES points.
 */
export function frameClock(
  timesS: ArrayLike<number>,
  tInitEpochS: number,
  nominalFps: number,
): FrameClock | FrameClockRefused | null {
  const n = timesS.length
  if (n < 40) return null
  const hull: number[] = [] // frame indices, the lower hull's vertices left to right
  for (let k = 0; k < n; k++) {
    while (hull.length >= 2) {
      const [a, b] = [hull[hull.length - 2], hull[hull.length - 1]]
      // b is not a vertex when it lies on or above the chord a → k
      if ((timesS[b] - timesS[a]) * (k - a) >= (timesS[k] - timesS[a]) * (b - a)) hull.pop()
      else break
    }
    hull.push(k)
  }
  const slope = (i: number) => (timesS[hull[i + 1]] - timesS[hull[i]]) / (hull[i + 1] - hull[i])
  const span = (i: number) => hull[i + 1] - hull[i]
  const nominalS = 1 / nominalFps
  const onLine = (i: number) => {
    let count = 0
    for (let k = 0; k < n; k++)
      if (timesS[k] - timesS[hull[i]] - (k - hull[i]) * slope(i) < ON_LINE_PERIODS * nominalS) count++
    return count
  }
  let longest = 0 // the edge over the most frames: the read times' longest straight run
  let best = { edge: -1, onLine: 0 }
  for (let i = 0; i + 1 < hull.length; i++) {
    if (span(i) > span(longest)) longest = i
    if (Math.abs(nominalS / slope(i) - 1) > MAX_CAMERA_RATE_ERROR) continue // fps past the bound
    const count = onLine(i)
    if (count > best.onLine || (count === best.onLine && span(i) > span(best.edge))) best = { edge: i, onLine: count }
  }
  if (best.onLine < MIN_STEADY_FRAMES)
    return { refused: 'implausible-rate', longestRunFps: 1 / slope(longest), onLineFrames: best.onLine, nominalFps }
  const periodS = slope(best.edge)
  const interceptS = timesS[hull[best.edge]] - hull[best.edge] * periodS
  const above = (k: number) => timesS[k] - (interceptS + k * periodS)
  let bufferedFrames = 0
  while (bufferedFrames < n && above(bufferedFrames) > periodS / 2) bufferedFrames++
  let offLineFrames = 0
  for (let k = bufferedFrames; k < n; k++) if (above(k) > 2 * periodS) offLineFrames++
  return {
    firstFrameEpochS: tInitEpochS + interceptS,
    framePeriodS: periodS,
    fps: 1 / periodS,
    bufferedFrames,
    firstReadLateS: above(0),
    offLineFrames,
    frames: n,
  }
}

/** What a refused frame clock's note says. */
export function describeRefusedClock(r: FrameClockRefused, what: string): string {
  return (
    `${what} shows no steady frame rate within ${MAX_CAMERA_RATE_ERROR * 100} % of the nominal` +
    ` ${r.nominalFps} fps (${r.onLineFrames} frames read on such a line, ${MIN_STEADY_FRAMES} needed;` +
    ` their longest straight run: ${r.longestRunFps.toFixed(2)} fps): TracktorLive fell behind the camera` +
    ' or read a burst, so no frame clock and no retiming'
  )
}

/**
 * Where the CSV's `time` 0 (the server's t_init) lies on the wall clock. Rows are flushed as they
 * are written, so a row is never on disk before its time: each look at the growing file bounds it
 * from above (look time − the newest row's time), and the lowest bound is the best. After the fact,
 * the file's mtime is the last row's write, to within a kernel tick.
 */
export interface CsvEpoch {
  tInitEpochS: number
  source: 'watched' | 'mtime' | 'timesync'
  uncertaintyS: number
}

export const MTIME_TICK_S = 0.005

export function csvEpochFromMtime(mtimeEpochS: number, lastTimeS: number): CsvEpoch {
  return { tInitEpochS: mtimeEpochS - lastTimeS, source: 'mtime', uncertaintyS: MTIME_TICK_S }
}

/** An epoch seen while recording (stored in the sync record: `mux` later uses it), with its rows' period. */
export interface WatchedEpoch extends CsvEpoch {
  source: 'watched'
  rowPeriodS: number // a look's bound lies at most about this much above t_init
}

/** The ULIDs' millisecond, and Date.now()'s, which stamps each look. */
export const ULID_TICK_S = 0.001

/**
 * What the names say of t_init, whatever the files' times: the CSV's ULID is minted in the server's
 * constructor, before run() takes t_init; the video's in the child run() starts, after t_init and
 * before the first frame is read (so before its row's time). The window is the camera's opening and
 * the start hooks wide (0.1–5 s): it catches a CSV saved, copied or touched later, not a tick off.
 */
export function ulidWindow(csvUlidEpochS: number, videoUlidEpochS: number, firstTimeS: number) {
  return {
    earliestS: Math.max(csvUlidEpochS, videoUlidEpochS - firstTimeS) - ULID_TICK_S,
    latestS: videoUlidEpochS + ULID_TICK_S,
  }
}

export type CsvEpochNote =
  | { kind: 'mtime-off-ulids' | 'watched-off-ulids'; apartS: number } // apartS: outside the ULIDs' window by
  | { kind: 'mtime-off-watched'; apartS: number } // mtime's t_init − the one seen while recording
  | { kind: 'mtime-moved-since-stop'; apartS: number } // mtime's t_init now − the one the stop verified from it

export function describeCsvEpochNote(note: CsvEpochNote, csv: string): string {
  const s = signed(note.apartS, 3, 's')
  return {
    'mtime-off-ulids':
      `${csv}'s mtime puts the server's start ${s} outside what its and the video's ULIDs allow` +
      ' (opened and saved, copied or touched?): the mtime is not used',
    'watched-off-ulids':
      `the rows of ${csv} seen while recording put the server's start ${s} outside what the ULIDs allow` +
      ' (the clock stepped?): not used',
    'mtime-off-watched':
      `${csv}'s mtime puts the server's start ${s} off the one seen while recording` +
      ' (opened and saved, copied or touched?): the mtime is not used',
    'mtime-moved-since-stop':
      `${csv}'s mtime puts the server's start ${s} off the one the stop verified from it` +
      ' (opened and saved, copied or touched since?): its mtime now is not used',
  }[note.kind]
}

/**
 * The epoch of a tracking CSV's times, from its two witnesses (the mtime now, the rows seen while
 * recording), each checked against the ULIDs' window, and the mtime against the rows seen (a
 * look's bound is never below t_init by more than Date.now()'s millisecond, nor above it by much
 * more than a row's period). A CSV opened and saved, copied or touched moves its mtime: then the
 * mtime is not used, and the note says why. null epoch: no witness left. Mux later, an mtime moved since
 * the stop gives way to the epoch the stop verified from it (atStop), said.
 */
export function chooseCsvEpoch(
  mtimeNow: CsvEpoch,
  watched: WatchedEpoch | null,
  window: { earliestS: number; latestS: number },
  atStop: CsvEpoch | null = null, // mux later: the mtime's epoch the stop verified (the sync record keeps it)
): { epoch: CsvEpoch | null; notes: CsvEpochNote[] } {
  const notes: CsvEpochNote[] = []
  // The mtime moved since the stop checked it: what the stop verified is the mtime's witness, not today's.
  const movedS = atStop ? mtimeNow.tInitEpochS - atStop.tInitEpochS : 0
  if (atStop && Math.abs(movedS) > 1e-6) notes.push({ kind: 'mtime-moved-since-stop', apartS: movedS })
  const fromMtime = atStop && Math.abs(movedS) > 1e-6 ? atStop : mtimeNow
  const outside = (t: number, belowS: number, aboveS: number) =>
    t < window.earliestS - belowS ? t - window.earliestS : t > window.latestS + aboveS ? t - window.latestS : 0
  let seen: WatchedEpoch | null = watched
  const seenOut = seen ? outside(seen.tInitEpochS, 0, seen.rowPeriodS) : 0 // a bound: up to a period above
  if (seen && seenOut) {
    notes.push({ kind: 'watched-off-ulids', apartS: seenOut })
    seen = null
  }
  let mtime: CsvEpoch | null = fromMtime
  const mtimeOut = outside(fromMtime.tInitEpochS, MTIME_TICK_S, MTIME_TICK_S)
  const apartS = seen ? fromMtime.tInitEpochS - seen.tInitEpochS : 0
  if (mtimeOut) {
    notes.push({ kind: 'mtime-off-ulids', apartS: mtimeOut })
    mtime = null
  } else if (seen && (apartS > ULID_TICK_S + MTIME_TICK_S || apartS < -(seen.rowPeriodS + MTIME_TICK_S))) {
    notes.push({ kind: 'mtime-off-watched', apartS })
    mtime = null
  }
  // Watching beats the mtime's kernel tick once it has looked often enough.
  const epoch = seen && (!mtime || seen.uncertaintyS < mtime.uncertaintyS) ? seen : mtime
  return { epoch, notes }
}

/**
 * The timesync cassette's rows are t_init + the CSV's times (row k is frame k's read time), already
 * on the server's wall clock: the same frame clock, with no epoch to estimate. Its first row alone
 * is a read time, up to ~0.4 s after the camera took frame 0 (the buffered start).
 */
export function timesyncClock(t: TimesyncSpan, nominalFps: number): TrackedClock | FrameClockRefused | null {
  if (!t.timesS) return null
  const clock = frameClock(
    t.timesS.map((x) => x - t.firstS),
    t.firstS,
    nominalFps,
  )
  if (clock && 'refused' in clock) return clock
  return (
    clock && {
      ...clock,
      epoch: { tInitEpochS: t.firstS, source: 'timesync', uncertaintyS: 0 },
      lastReadEpochS: t.lastS,
    }
  )
}

// ── The picture ──────────────────────────────────────────────────────────────────────────────

export const PLOT_WIDTH = 1200
export const PLOT_HEIGHT = 240

export interface PlotInput {
  audioFile: string
  plotFile: string
  audioStartEpochS: number
  audioDurationS: number
  videoStartEpochS: number
  videoDurationS: number
}

/**
 * ffmpeg draws it: the waveform (showwavespic) at the audio's place on a shared time axis, the
 * video's span as an orange bar below, the video's first frame as a red line, the audio's first
 * sample as a green one. Their distance is the offset. No text, so no font is needed.
 */
export function plotArgs(p: PlotInput): { args: string[]; videoX: number; audioX: number } {
  const margin = 20
  const t0 = Math.min(p.audioStartEpochS, p.videoStartEpochS)
  const t1 = Math.max(p.audioStartEpochS + p.audioDurationS, p.videoStartEpochS + p.videoDurationS)
  const pxPerS = (PLOT_WIDTH - 2 * margin) / Math.max(t1 - t0, 1e-3)
  const x = (epochS: number) => Math.round(margin + (epochS - t0) * pxPerS)
  const [audioX, videoX] = [x(p.audioStartEpochS), x(p.videoStartEpochS)]
  const audioW = Math.max(2, Math.round(p.audioDurationS * pxPerS))
  const videoW = Math.max(2, Math.round(p.videoDurationS * pxPerS))
  const graph = [
    `[0:a]showwavespic=s=${audioW}x120:colors=0x1f77b4[wave]`,
    `[1:v][wave]overlay=x=${audioX}:y=20,` +
      `drawbox=x=${videoX}:y=160:w=${videoW}:h=40:color=0xff7f0e:t=fill,` +
      `drawbox=x=${videoX}:y=0:w=2:h=${PLOT_HEIGHT}:color=0xd62728:t=fill,` +
      `drawbox=x=${audioX}:y=0:w=2:h=150:color=0x2ca02c:t=fill[out]`,
  ].join(';')
  return {
    videoX,
    audioX,
    args: [
      '-hide_banner',
      '-v',
      'error',
      '-n',
      '-i',
      p.audioFile,
      '-f',
      'lavfi',
      '-i',
      `color=c=white:s=${PLOT_WIDTH}x${PLOT_HEIGHT}:d=1`,
      '-filter_complex',
      graph,
      '-map',
      '[out]',
      '-frames:v',
      '1',
      p.plotFile,
    ],
  }
}

// ── Sync events ──────────────────────────────────────────────────────────────────────────────
// A lab's truth in the content: a flash in view and a click or clap heard at the same moment.
// Flashes are timed to a fraction of a frame from the partly lit frame, clicks to the sample block
// where the sound starts: both sides time the onset. Every click − flash difference is a candidate
// offset; the offset is the one most pairs agree on, never the nearest click (which, with the anchors
// a second off, is the neighbouring event's). A regular train supports every multiple of its period
// as well: no verdict then, unless the anchors can tell them apart. The agreeing pairs' line gives the
// rate, applied only when it stands out of its own noise.

/** Frames whose mean brightness (0–255) jumps from dark to bright: the first frame of each flash. */
export function flashFrames(brightness: ArrayLike<number>): number[] {
  const levels = flashLevels(brightness)
  if (!levels) return []
  const frames: number[] = []
  for (let k = 0; k < brightness.length; k++)
    if (brightness[k] >= levels.threshold && (k === 0 || brightness[k - 1] < levels.threshold)) frames.push(k)
  return frames
}
export const FLASH_MIN_JUMP = 40

/** The scene's dark level and the threshold halfway to the brightest frame; null when nothing flashes. */
function flashLevels(brightness: ArrayLike<number>): { dark: number; threshold: number } | null {
  const sorted = Float64Array.from(brightness).sort()
  if (sorted.length < 2) return null
  const dark = sorted[Math.floor(sorted.length * 0.1)]
  const bright = sorted[sorted.length - 1]
  if (bright - dark < FLASH_MIN_JUMP) return null // no flash, only the scene changing
  return { dark, threshold: (dark + bright) / 2 }
}

/**
 * Each flash's onset, to a fraction of a frame. A frame's time is the start of its exposure (its
 * presentation time), and it integrates light for exposureS: the frame period unless known otherwise.
 * A flash that starts inside an exposure lights that frame partly; with the brightness linear in the
 * light between the dark frame before and the fully lit one after, the flash began that fraction of
 * the exposure before the exposure's end. A shorter real exposure leaves a gap between exposures: a
 * flash starting in it, or late in one, is then timed up to (period − exposure) late. A camera's gamma
 * makes a partly lit frame look more lit than it was: up to 0.28 of a frame early at gamma 2.2. The
 * light must stay on two frames.
 */
export function flashOnsetsS(brightness: ArrayLike<number>, ptsS: ArrayLike<number>, exposureS: number): number[] {
  const levels = flashLevels(brightness)
  const at = (k: number) => brightness[Math.min(k, brightness.length - 1)]
  return flashFrames(brightness).map((k) => {
    const dark = k >= 2 ? at(k - 2) : (levels?.dark ?? at(k))
    const full = Math.max(at(k), at(k + 1))
    if (full - dark <= 0) return ptsS[k]
    const lit = (b: number) => Math.min(1, Math.max(0, (b - dark) / (full - dark)))
    const litBefore = k >= 1 ? lit(at(k - 1)) : 0
    return litBefore >= PARTLY_LIT_MIN
      ? ptsS[k - 1] + exposureS * (1 - litBefore)
      : ptsS[k] + exposureS * (1 - lit(at(k)) - litBefore) // the same light, at the level of the noise
  })
}
export const PARTLY_LIT_MIN = 0.05 // a frame lit less than this is dark with noise

/**
 * The first block of each loud sound: peaks (absolute, one per block) over a threshold well above
 * the room's noise and within reach of the loudest sound, after at least QUIET_BEFORE_ONSET_S under it.
 */
export function onsetBlocks(peaks: ArrayLike<number>, blockS: number): number[] {
  const sorted = Float64Array.from(peaks).sort()
  if (!sorted.length) return []
  const noise = sorted[Math.floor(sorted.length / 2)]
  const loudest = sorted[sorted.length - 1]
  const threshold = Math.max(noise * 8, loudest * 0.3)
  if (loudest < noise * 8 || loudest < ONSET_FLOOR) return [] // nothing stands out of the noise, or silence
  const quietBlocks = Math.ceil(QUIET_BEFORE_ONSET_S / blockS)
  const blocks: number[] = []
  let quietFor = quietBlocks
  for (let b = 0; b < peaks.length; b++) {
    if (peaks[b] >= threshold) {
      if (quietFor >= quietBlocks) blocks.push(b)
      quietFor = 0
    } else quietFor++
  }
  return blocks
}
export const QUIET_BEFORE_ONSET_S = 0.2
export const ONSET_FLOOR = 64 // −54 dBFS: below it, no sound is an event

/** The agreement window: about a frame, never so wide that two clicks (≥ 0.2 s apart) fall in one. */
export function eventToleranceS(framePeriodS: number): number {
  return Math.min(Math.max(framePeriodS, 0.015), 0.09)
}

export interface EventCandidate {
  offsetS: number // click − flash that these pairs agree on
  pairs: number // how many click − flash differences lie within the tolerance of it
}

/**
 * Every click − flash difference is a candidate offset, supported by the differences within
 * toleranceS of it. The best `most`, best first, each more than two tolerances from the ones before.
 */
export function eventCandidates(
  flashesS: number[],
  clicksS: number[],
  toleranceS: number,
  most = MAX_CANDIDATES,
): EventCandidate[] {
  // Only offsets within MAX_EVENT_OFFSET_S: an hour of vocalisations against its flashes is tens of
  // millions of differences otherwise (20k × 1.8k: half a gigabyte with their support).
  const within = (d: number) => Math.abs(d) <= MAX_EVENT_OFFSET_S
  let n = 0
  for (const flashS of flashesS) for (const clickS of clicksS) if (within(clickS - flashS)) n++
  const diffs = new Float64Array(n)
  n = 0
  for (const flashS of flashesS) for (const clickS of clicksS) if (within(clickS - flashS)) diffs[n++] = clickS - flashS
  diffs.sort()
  const support = new Int32Array(n)
  for (let i = 0, lo = 0, hi = 0; i < n; i++) {
    while (diffs[lo] < diffs[i] - toleranceS) lo++
    while (hi < n && diffs[hi] <= diffs[i] + toleranceS) hi++
    support[i] = hi - lo
  }
  const found: EventCandidate[] = []
  while (found.length < most) {
    let best = -1 // a few scans, not a sort: an hour of events is millions of differences
    for (let i = 0; i < n; i++)
      if (
        (best < 0 || support[i] > support[best]) &&
        !found.some((c) => Math.abs(c.offsetS - diffs[i]) <= 2 * toleranceS)
      )
        best = i
    if (best < 0) break
    const near = diffs.filter((d) => Math.abs(d - diffs[best]) <= toleranceS)
    found.push({ offsetS: medianOf([...near]), pairs: support[best] })
  }
  return found
}
export const MAX_CANDIDATES = 5

export interface EventPair {
  flashS: number
  clickS: number
  residualS: number // click − flash: > 0, the sound comes late
}

/** Each flash with the click nearest to it plus offsetS, when within toleranceS. */
export function pairsAt(flashesS: number[], clicksS: number[], offsetS: number, toleranceS: number): EventPair[] {
  const pairs: EventPair[] = []
  for (const flashS of flashesS) {
    let best: number | null = null
    for (const clickS of clicksS)
      if (Math.abs(clickS - flashS - offsetS) <= toleranceS)
        if (best == null || Math.abs(clickS - flashS - offsetS) < Math.abs(best - flashS - offsetS)) best = clickS
    if (best != null) pairs.push({ flashS, clickS: best, residualS: best - flashS })
  }
  return pairs
}

/** Why the events gave no verdict, or what was decided beside it: worded by eventNoteText. */
export type EventNote =
  | { kind: 'no-events'; flashes: number; clicks: number }
  | { kind: 'too-few'; pairs: number }
  | { kind: 'ambiguous'; candidates: EventCandidate[] } // the rivals, best first
  | { kind: 'tie-broken-by-anchors'; candidates: EventCandidate[]; chosen: EventCandidate; doubtS: number }
  | { kind: 'rate-not-applied'; pairs: number; slope: number | null; slopeError: number | null; atEndS: number }
  | { kind: 'unreadable'; why: string }
  | { kind: 'interrupted' }

/**
 * The candidate most pairs agree on, or none. Rivals are candidates with two pairs or more that are
 * about as well supported as the best (AMBIGUOUS_SHARE of it, or one pair short: a regular train's
 * neighbours): then the anchors may choose, when exactly one of the tied candidates lies within
 * anchorDoubtS of them (null: no anchors, as for `check`); otherwise the train is ambiguous.
 */
export function chooseCandidate(
  candidates: EventCandidate[],
  anchorDoubtS: number | null,
): { chosen: EventCandidate | null; note: EventNote | null } {
  const [best] = candidates
  if (!best || best.pairs < MIN_EVENT_PAIRS) return { chosen: null, note: { kind: 'too-few', pairs: best?.pairs ?? 0 } }
  const rivals = candidates
    .slice(1)
    .filter((c) => c.pairs >= 2 && (c.pairs >= AMBIGUOUS_SHARE * best.pairs || best.pairs - c.pairs <= 1))
  if (!rivals.length) return { chosen: best, note: null }
  const tied = [best, ...rivals]
  const near = anchorDoubtS == null ? [] : tied.filter((c) => Math.abs(c.offsetS) <= anchorDoubtS)
  if (near.length === 1 && anchorDoubtS != null)
    return {
      chosen: near[0],
      note: { kind: 'tie-broken-by-anchors', candidates: tied, chosen: near[0], doubtS: anchorDoubtS },
    }
  return { chosen: null, note: { kind: 'ambiguous', candidates: tied } }
}
export const MIN_EVENT_PAIRS = 2
/** The largest offset the events are searched for, either way: anchors a minute off, a file's own sync. */
export const MAX_EVENT_OFFSET_S = 60
export const AMBIGUOUS_SHARE = 0.8
// How far the anchors can be off: the audio's start stamp was seen 1.9 s from the truth (SYNC.md).
export const ANCHOR_DOUBT_S = 2

/**
 * How far the anchors' offset may be off when they break a tie: ANCHOR_DOUBT_S, or the starts' own bounds
 * when wider (an undecided stamp lies up to MAX_DELIVERY_LATENCY_S before its samples' arrival).
 */
export function anchorDoubtFor(audioUncertaintyS: number | null, videoUncertaintyS: number | null): number {
  return Math.max(ANCHOR_DOUBT_S, (audioUncertaintyS ?? 0) + (videoUncertaintyS ?? 0))
}

export interface RateFit {
  slope: number | null // the residuals' change per second of the timeline; null with fewer than 3 pairs
  slopeError: number | null // its standard error
  meanFlashS: number
  meanResidualS: number
  atEndS: number // the fitted slope's effect where the timeline is farthest from the events' centre
  applied: boolean
}

/**
 * The least-squares line through the pairs' residuals, with the slope's standard error (the
 * residuals' scatter, at least EVENT_TIMING_FLOOR_S). Applied only when its effect at the timeline's
 * far end (0 or endS, whichever is farther from the events) exceeds its own uncertainty there
 * times studentT3Sigma (RATE_SIGNIFICANCE sigmas, widened for few pairs) and MIN_RATE_EFFECT_S;
 * fewer than MIN_RATE_PAIRS pairs cannot tell their slope from their error.
 */
export function fitRate(pairs: EventPair[], endS: number): RateFit {
  const n = pairs.length
  const meanFlashS = pairs.reduce((a, p) => a + p.flashS, 0) / n
  const meanResidualS = pairs.reduce((a, p) => a + p.residualS, 0) / n
  const reachS = Math.max(meanFlashS, endS - meanFlashS)
  let sxx = 0
  let sxy = 0
  for (const p of pairs) {
    sxx += (p.flashS - meanFlashS) ** 2
    sxy += (p.flashS - meanFlashS) * (p.residualS - meanResidualS)
  }
  if (n < MIN_RATE_PAIRS || sxx <= 0)
    return { slope: null, slopeError: null, meanFlashS, meanResidualS, atEndS: 0, applied: false }
  const slope = sxy / sxx
  let ssr = 0
  for (const p of pairs) ssr += (p.residualS - meanResidualS - slope * (p.flashS - meanFlashS)) ** 2
  const scatterS = Math.max(Math.sqrt(ssr / (n - 2)), EVENT_TIMING_FLOOR_S)
  const slopeError = scatterS / Math.sqrt(sxx)
  const atEndS = slope * reachS
  const significance = studentT3Sigma(n - 2)
  const applied = Math.abs(atEndS) > significance * slopeError * reachS && Math.abs(atEndS) > MIN_RATE_EFFECT_S
  return { slope, slopeError, meanFlashS, meanResidualS, atEndS, applied }
}

/**
 * Student's t at the confidence of RATE_SIGNIFICANCE normal sigmas (two-sided 99.73 %) for `dof`
 * degrees of freedom: a slope's error estimated from a few residuals is itself uncertain, and 3 × it
 * with 1 degree of freedom passes one noise-only fit in five (3 events in 10 s at 2 ms: 1.5 s at an
 * hour's end). Linear in 1/dof between tabulated points; 3 past them.
 */
export function studentT3Sigma(dof: number): number {
  const table: [number, number][] = [
    [1, 235.78],
    [2, 19.21],
    [3, 9.22],
    [4, 6.62],
    [5, 5.51],
    [6, 4.9],
    [8, 4.28],
    [10, 3.96],
    [15, 3.59],
    [20, 3.42],
    [30, 3.27],
    [60, 3.13],
    [120, 3.06],
  ]
  if (dof <= 1) return table[0][1]
  for (let i = 1; i < table.length; i++) {
    const [d1, t1] = table[i]
    if (dof > d1) continue
    const [d0, t0] = table[i - 1]
    return t0 + ((1 / dof - 1 / d0) / (1 / d1 - 1 / d0)) * (t1 - t0)
  }
  return RATE_SIGNIFICANCE + ((table[table.length - 1][1] - RATE_SIGNIFICANCE) * 120) / dof
}
export const EVENT_TIMING_FLOOR_S = 0.0005 // one event's timing at best: a click block, a sliver of a frame
export const RATE_SIGNIFICANCE = 3
/** A rate from fewer pairs is never applied: 5 leave 3 degrees of freedom for the slope's own error. */
export const MIN_RATE_PAIRS = 5
export const MIN_RATE_EFFECT_S = 0.001

export interface EventFit {
  flashes: number
  clicks: number
  candidates: EventCandidate[] // the offsets weighed, best first
  toleranceS: number
  used: number // the pairs that agree on the chosen offset
  medianS: number | null // their residuals' median …
  spreadS: number | null // … and max − min
  offsetS: number // the residual at 0 on the timeline: the line's, or their mean without a rate
  slope: number // applied: per second of the timeline (0 when not significant)
  slopeFitted: number | null // the line's slope ± its standard error, applied or not
  slopeError: number | null
  driftS: number // the fitted slope over the events' span
  spanS: number
  consistent: boolean // a verdict
  notes: EventNote[]
  events: EventPair[]
}

/**
 * The one engine for `check` and --events: flashes and clicks on one timeline (the file's own, or the
 * muxed one the anchors give) → the offset most pairs agree on, and the rate when it is significant.
 */
export function syncOnEvents(e: {
  flashesS: number[]
  clicksS: number[]
  framePeriodS: number
  endS: number // the timeline's end (the video's): how far a rate would reach
  anchorDoubtS: number | null // null: no anchors to break a tie
}): EventFit {
  const toleranceS = eventToleranceS(e.framePeriodS)
  const base = { flashes: e.flashesS.length, clicks: e.clicksS.length, toleranceS }
  const none = { used: 0, medianS: null, spreadS: null, offsetS: 0, slope: 0, slopeFitted: null, slopeError: null }
  const verdictless = (candidates: EventCandidate[], notes: EventNote[]): EventFit => ({
    ...base,
    candidates,
    ...none,
    driftS: 0,
    spanS: 0,
    consistent: false,
    notes,
    events: [],
  })
  if (!e.flashesS.length || !e.clicksS.length)
    return verdictless([], [{ kind: 'no-events', flashes: e.flashesS.length, clicks: e.clicksS.length }])
  const candidates = eventCandidates(e.flashesS, e.clicksS, toleranceS)
  const { chosen, note } = chooseCandidate(candidates, e.anchorDoubtS)
  if (!chosen) return verdictless(candidates, note ? [note] : [])
  const pairs = pairsAt(e.flashesS, e.clicksS, chosen.offsetS, toleranceS)
  if (pairs.length < MIN_EVENT_PAIRS) return verdictless(candidates, [{ kind: 'too-few', pairs: pairs.length }])
  const residuals = pairs.map((p) => p.residualS)
  const rate = fitRate(pairs, e.endS)
  const notes: EventNote[] = note ? [note] : []
  if (!rate.applied)
    notes.push({
      kind: 'rate-not-applied',
      pairs: pairs.length,
      slope: rate.slope,
      slopeError: rate.slopeError,
      atEndS: rate.atEndS,
    })
  const slope = rate.applied ? (rate.slope as number) : 0
  const spanS = pairs[pairs.length - 1].flashS - pairs[0].flashS
  return {
    ...base,
    candidates,
    used: pairs.length,
    medianS: medianOf(residuals),
    spreadS: Math.max(...residuals) - Math.min(...residuals),
    offsetS: rate.meanResidualS - slope * rate.meanFlashS,
    slope,
    slopeFitted: rate.slope,
    slopeError: rate.slopeError,
    driftS: (rate.slope ?? 0) * spanS,
    spanS,
    consistent: true,
    notes,
    events: pairs,
  }
}

/** The middle value (the lower of the two middle ones for an even count). */
function medianOf(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor((sorted.length - 1) / 2)]
}

export interface EventSummary {
  flashes: number
  clicks: number
  pairs: number // the pairs that agree on the offset (= used)
  used: number
  medianMs: number | null // before: on the anchors' timeline
  spreadMs: number | null
  driftMs: number
  slopePpm: number | null // the fitted rate ± its standard error, applied or not
  slopeErrorPpm: number | null
  rateApplied: boolean
  candidates: { offsetMs: number; pairs: number }[] // on the anchors' timeline, best first
  notes: EventNote[]
  applied: boolean
  why: string
}

/**
 * --events: the anchors' offset and retiming, corrected so that the events line up. Flashes are
 * the source video's frame times, clicks the WAV's; both are put on the muxed timeline as muxPlan
 * will (video × itsscale × the card's clock ratio; audio shifted by the offset), so that a candidate
 * is how far the anchors are off; the agreeing pairs' line is taken out: its value at the start from
 * the offset, its slope (when significant) from the video's timing.
 */
export function alignOnEvents(a: {
  flashesS: number[]
  clicksS: number[]
  framePeriodS: number
  offsetS: number
  itsscale: number | null
  clockRatio: number
  videoDurationS: number | null // on the muxed timeline; null → the last flash
  anchorDoubtS?: number // how far the anchors may be off (anchorDoubtFor); ANCHOR_DOUBT_S when not given
}): { offsetS: number; itsscale: number | null; fit: EventFit; summary: EventSummary } {
  const videoScale = (a.itsscale ?? 1) * a.clockRatio
  const flashesS = a.flashesS.map((t) => t * videoScale)
  const fit = syncOnEvents({
    flashesS,
    clicksS: a.clicksS.map((t) => t + a.offsetS * a.clockRatio),
    framePeriodS: a.framePeriodS * videoScale,
    endS: a.videoDurationS ?? flashesS[flashesS.length - 1] ?? 0,
    anchorDoubtS: a.anchorDoubtS ?? ANCHOR_DOUBT_S,
  })
  const ppm = (x: number | null) => (x == null ? null : x * 1e6)
  const summary: EventSummary = {
    flashes: fit.flashes,
    clicks: fit.clicks,
    pairs: fit.used,
    used: fit.used,
    medianMs: fit.medianS == null ? null : fit.medianS * 1000,
    spreadMs: fit.spreadS == null ? null : fit.spreadS * 1000,
    driftMs: fit.driftS * 1000,
    slopePpm: ppm(fit.slopeFitted),
    slopeErrorPpm: ppm(fit.slopeError),
    rateApplied: fit.slope !== 0,
    candidates: fit.candidates.map((c) => ({ offsetMs: c.offsetS * 1000, pairs: c.pairs })),
    notes: fit.notes,
    applied: fit.consistent,
    why: fit.consistent ? describeEventFit(fit) : fit.notes.map(eventNoteText).join('; '),
  }
  if (!fit.consistent) return { offsetS: a.offsetS, itsscale: a.itsscale, fit, summary }
  return {
    offsetS: a.offsetS - fit.offsetS / a.clockRatio,
    itsscale: fit.slope ? (a.itsscale ?? 1) * (1 + fit.slope) : a.itsscale,
    fit,
    summary,
  }
}

const signedMs = (seconds: number, digits = 1) => signed(seconds * 1000, digits, 'ms')

/** Candidates for a human: `+600 ms (12 pairs), −400 ms (11)`. */
export function weighed(candidates: EventCandidate[]): string {
  return candidates.map((c, i) => `${signedMs(c.offsetS, 0)} (${c.pairs}${i ? '' : ' pairs'})`).join(', ')
}

/** A note in words, for a human. */
export function eventNoteText(note: EventNote): string {
  switch (note.kind) {
    case 'no-events':
      return `no ${note.flashes ? 'click' : 'flash'} found (${note.flashes} flashes, ${note.clicks} clicks)`
    case 'too-few':
      return (
        `${note.pairs ? `only ${note.pairs} flash–click pair agrees` : 'no flash–click pair agrees'} on an offset:` +
        ` at least ${MIN_EVENT_PAIRS} are needed`
      )
    case 'ambiguous': {
      const [a, b] = note.candidates
      const apartS = Math.abs(a.offsetS - b.offsetS)
      return (
        `the train is ambiguous at a ${apartS.toFixed(3)} s period: offsets ${weighed(note.candidates)} are about` +
        ' equally supported. Flash and click at irregular (random) gaps to resolve it'
      )
    }
    case 'tie-broken-by-anchors':
      return (
        `a regular train: ${note.candidates.map((c) => signedMs(c.offsetS, 0)).join(', ')} are about equally` +
        ` supported; the anchors (trusted to ${note.doubtS} s) chose ${signedMs(note.chosen.offsetS, 0)}`
      )
    case 'rate-not-applied':
      if (note.slope == null || note.slopeError == null)
        return `no rate from ${note.pairs} pairs (fewer than ${MIN_RATE_PAIRS} cannot measure its error): offset only`
      return (
        `rate ${(note.slope * 1e6).toFixed(0)} ± ${(note.slopeError * 1e6).toFixed(0)} ppm not applied:` +
        ` ${signedMs(note.atEndS)} at the video's far end is within` +
        ` ${studentT3Sigma(note.pairs - 2).toFixed(1)}× its uncertainty` +
        ` (${RATE_SIGNIFICANCE} σ for ${note.pairs} pairs)` +
        ` or under ${MIN_RATE_EFFECT_S * 1000} ms`
      )
    case 'unreadable':
      return note.why
    case 'interrupted':
      return 'a stop request came while they were being read'
  }
}

/** One line for a human: how far the sound is from the picture at the events. */
export function describeEventFit(fit: EventFit): string {
  if (!fit.consistent || fit.medianS == null || fit.spreadS == null)
    return `no verdict: ${fit.notes.map(eventNoteText).join('; ')}`
  const rate =
    fit.slopeFitted == null || fit.slopeError == null
      ? ''
      : `, rate ${(fit.slopeFitted * 1e6).toFixed(0)} ± ${(fit.slopeError * 1e6).toFixed(0)} ppm` +
        ` (${signedMs(fit.driftS)} over ${fit.spanS.toFixed(0)} s${fit.slope ? '' : ', not significant'})`
  return (
    `${fit.used} events: sound ${signedMs(fit.medianS)} from the picture (median; + = late),` +
    ` spread ${(fit.spreadS * 1000).toFixed(1)} ms${rate}`
  )
}

// ── The live status ─────────────────────────────────────────────────────────────────────────

export const SILENCE_DBFS = -80
export const SILENCE_WARN_S = 5

/** RMS level of 16-bit samples in dBFS (−Infinity for digital silence), of every `step`-th sample. */
export function levelDbfs(samples: Int16Array, step = 1): number {
  let sum = 0
  let count = 0
  for (let i = 0; i < samples.length; i += step, count++) sum += samples[i] * samples[i]
  return count ? 10 * Math.log10(sum / count / (32768 * 32768)) : -Infinity
}

/**
 * The status line: elapsed time, the WAVs' size, each device's input level with a bar (colored on a
 * TTY; shorter bars when there are several).
 */
export function statusLine(elapsedS: number, wavBytes: number, dbfs: number | number[], color: boolean): string {
  const hms = [elapsedS / 3600, (elapsedS / 60) % 60, elapsedS % 60]
    .map((n) => String(Math.floor(n)).padStart(2, '0'))
    .join(':')
  const size = wavBytes >= 1e9 ? `${(wavBytes / 1e9).toFixed(2)} GB` : `${(wavBytes / 1e6).toFixed(1)} MB`
  const levels = [dbfs].flat()
  const barWidth = levels.length > 1 ? 10 : 20
  const meter = (db: number) => {
    const level = Number.isFinite(db) ? `${db.toFixed(1)} dBFS` : 'silence'
    const bar = '▮'.repeat(Math.max(0, Math.min(barWidth, Math.round(((db + 80) / 80) * barWidth))))
    return `${level.padStart(11)} ${color ? `\x1b[32m${bar}\x1b[0m` : bar}`
  }
  const dot = color ? '\x1b[31m●\x1b[0m' : '●'
  return `${dot} ${hms}  ${size}  ${levels.map(meter).join(levels.length > 1 ? '  |' : '')}`
}

// ── Camera latency ───────────────────────────────────────────────────────────────────────────
// TracktorLive stamps a frame after reading and tracking it: every anchor is late by the camera's
// latency, which no file holds. --events measures it (the events' offset against the anchors'), the
// working folder keeps every measurement per camera, and a later recording of the same camera, device
// and mode applies it; the offset's bounds hold it, or, unmeasured, the widest a camera is known to have.

export type CameraLatencySource = 'events' | 'calibration' | 'flag' | 'unmeasured'

/** What a latency belongs to: the feed, the microphone beside it, the video's mode, and the anchor it corrects. */
export interface CameraKey {
  feedId: string
  audioDevice: string
  videoMode: string // `640x480 30 fps mpeg4`, from ffprobe
  anchor: VideoTiming['source']
}

/** One --events verdict as a latency: the anchors' lateness at the events' median, their spread and count. */
export interface LatencyMeasurement {
  date: string // ISO 8601, when it was measured
  video?: string // the recording's file name: measured again (mux later), it replaces its own
  pairs: number
  medianS: number
  spreadS: number
  // The measuring session's own anchors' ± (its audio start's and its video start's): the latency carries
  // their error to every later session, so what is applied later is that much less sure.
  anchorUncertaintyS?: number
}

export type CalibratedCamera = CameraKey & { measurements: LatencyMeasurement[] }

/** The calibration file's content: every camera measured, and every measurement of each. */
export interface Calibration {
  about: string
  cameras: CalibratedCamera[]
}

/** What the kept measurements say together: the interval that holds them all, as a centre ± half its width. */
export interface KeptLatency {
  latencyS: number
  uncertaintyS: number
  sessions: number
}

/** The latency taken off the video's times, and where it comes from. */
export interface CameraLatency {
  latencyS: number
  uncertaintyS: number | null // null: nobody measured it (a flag's, or none)
  source: CameraLatencySource
  sessions: number // calibration: the measurements kept
}

/**
 * Unmeasured, the true offset lies above the figure by up to the camera's latency: USB/UVC webcams 5–150 ms,
 * OpenCV's queue of 4 buffers ~100 ms more, a network stream here 136 ms (RTSP cameras reach 0.3–1 s: measure those).
 */
export const UNMEASURED_LATENCY_MAX_S = 0.25

export const CALIBRATION_ABOUT =
  "record-audio's camera latencies (seconds from the camera taking a frame to TracktorLive's stamp of it)," +
  ' measured by --events, one entry per feed, microphone, video mode and anchor; every measurement is kept.' +
  ' Edit or delete freely: a later recording of the same camera applies them (--no-calibration ignores them).'

/** The video's mode as a latency depends on it: `640x480 30 fps mpeg4`; null when ffprobe could not say. */
export function videoModeOf(m: {
  width: number | null
  height: number | null
  fps: number | null
  codec: string | null
}) {
  if (!m.width || !m.height || !m.fps || !m.codec) return null
  return `${m.width}x${m.height} ${Number(m.fps.toFixed(3))} fps ${m.codec}`
}

export function sameCamera(a: CameraKey, b: CameraKey): boolean {
  return (
    a.feedId === b.feedId && a.audioDevice === b.audioDevice && a.videoMode === b.videoMode && a.anchor === b.anchor
  )
}

/** A calibration file's text; throws a one-line Error naming what is wrong. */
export function parseCalibration(text: string): Calibration {
  let raw: { cameras?: unknown }
  try {
    raw = JSON.parse(text)
  } catch {
    throw new Error('it is not JSON')
  }
  if (!Array.isArray(raw?.cameras)) throw new Error('it has no "cameras" list')
  const cameras = raw.cameras.map((c: Record<string, unknown>, i: number): CalibratedCamera => {
    const where = `cameras[${i}]`
    for (const key of ['feedId', 'audioDevice', 'videoMode', 'anchor'])
      if (typeof c?.[key] !== 'string') throw new Error(`${where} has no "${key}" text`)
    if (!Array.isArray(c.measurements)) throw new Error(`${where} has no "measurements" list`)
    const measurements = c.measurements.map((m: Record<string, unknown>, j: number) => {
      for (const key of ['pairs', 'medianS', 'spreadS'])
        if (typeof m?.[key] !== 'number' || !Number.isFinite(m[key]))
          throw new Error(`${where}.measurements[${j}] has no "${key}" number`)
      return {
        date: String(m.date ?? ''),
        ...(typeof m.video === 'string' ? { video: m.video } : {}),
        pairs: m.pairs,
        medianS: m.medianS,
        spreadS: m.spreadS,
        ...(typeof m.anchorUncertaintyS === 'number' && m.anchorUncertaintyS >= 0
          ? { anchorUncertaintyS: m.anchorUncertaintyS }
          : {}),
      } as LatencyMeasurement
    })
    return { ...(c as unknown as CameraKey), measurements }
  })
  return { about: CALIBRATION_ABOUT, cameras }
}

/** Every kept measurement of one camera together: the interval holding each median ± half its spread. */
/** Past this no camera's (RTSP/IP cameras reach about 1 s): a measurement beyond is the anchors' error. */
export const MAX_CAMERA_LATENCY_S = 1
const CALIBRATION_MAX_BYTES = 16 * 1024 * 1024

export function keptLatency(measurements: LatencyMeasurement[], withAnchors = true): KeptLatency | null {
  if (!measurements.length) return null
  // What is applied carries each session's anchors' ±; the re-check (latencyMoved) asks of the spreads alone.
  const halfS = (m: LatencyMeasurement) => m.spreadS / 2 + (withAnchors ? (m.anchorUncertaintyS ?? 0) : 0)
  const lowS = Math.min(...measurements.map((m) => m.medianS - halfS(m)))
  const highS = Math.max(...measurements.map((m) => m.medianS + halfS(m)))
  return { latencyS: (lowS + highS) / 2, uncertaintyS: (highS - lowS) / 2, sessions: measurements.length }
}

/**
 * The events' verdict as the camera's latency: what was taken off (appliedS) plus how far the events moved
 * the offset from the anchors' (−their median residual, on the audio's clock).
 */
export function measuredLatency(
  appliedS: number,
  fit: Pick<EventFit, 'medianS' | 'spreadS' | 'used'>,
  clockRatio: number,
  date: Date,
): LatencyMeasurement | null {
  if (fit.medianS == null || fit.spreadS == null) return null
  return {
    date: date.toISOString(),
    pairs: fit.used,
    medianS: appliedS - fit.medianS / clockRatio,
    spreadS: fit.spreadS,
  }
}

/**
 * A new measurement against the kept ones: moved when further from them than their spread (the kept
 * interval's width) plus a frame period, an event's phase within a frame. null: nothing kept, or within.
 */
export function latencyMoved(kept: KeptLatency | null, m: LatencyMeasurement, framePeriodS: number): number | null {
  if (!kept) return null
  const apartS = m.medianS - kept.latencyS
  return Math.abs(apartS) > 2 * kept.uncertaintyS + framePeriodS ? apartS : null
}

/** What is taken off: --camera-latency, else what is kept (unless --no-calibration), else nothing (unmeasured). */
export function chooseCameraLatency(c: {
  flagS: number | null
  calibration: boolean
  kept: KeptLatency | null
}): CameraLatency {
  if (c.flagS != null) return { latencyS: c.flagS, uncertaintyS: null, source: 'flag', sessions: 0 }
  if (c.calibration && c.kept)
    return {
      latencyS: c.kept.latencyS,
      uncertaintyS: c.kept.uncertaintyS,
      source: 'calibration',
      sessions: c.kept.sessions,
    }
  return { latencyS: 0, uncertaintyS: null, source: 'unmeasured', sessions: 0 }
}

/** The calibration with one more measurement of a camera (a new entry for a camera never measured). */
export function withMeasurement(cal: Calibration, key: CameraKey, m: LatencyMeasurement): Calibration {
  const found = cal.cameras.some((c) => sameCamera(c, key))
  // One recording is one session: measured again (mux later --events), its new verdict replaces its old one.
  const others = (c: CalibratedCamera) => c.measurements.filter((old) => m.video == null || old.video !== m.video)
  const cameras = found
    ? cal.cameras.map((c) => (sameCamera(c, key) ? { ...c, measurements: [...others(c), m] } : c))
    : [...cal.cameras, { ...key, measurements: [m] }]
  return { about: CALIBRATION_ABOUT, cameras }
}

/**
 * The interval that holds the true offset. With the events: their spread (at least EVENT_TIMING_FLOOR_S)
 * either way. With the anchors, every term added: the audio's start, the frame clock (or ULID), the card's
 * clock over the video, the camera's latency with its spread; unmeasured, the latency (and an event's phase
 * within a frame, which the anchor cannot see) only raise it: up to UNMEASURED_LATENCY_MAX_S and a frame above.
 */
/**
 * How long a live camera's first frames may wait in its buffer before TracktorLive reads them and mints
 * the ULID (0.1–0.7 s measured beside the real recorder): the ULID anchor's offset may be that much higher.
 */
export const ULID_BUFFERED_MAX_S = 0.7

export function offsetBounds(b: {
  offsetS: number
  eventsSpreadS: number | null // the events set the offset (and the anchors broke no tie)
  audioUncertaintyS: number | null
  videoUncertaintyS: number | null
  cardClockS: number // the card's clock error over the video's length
  latency: Pick<CameraLatency, 'source' | 'uncertaintyS'>
  framePeriodS: number | null
  anchorsApartS?: number[] // a disagreeing anchor's first frame − the one used: its offset lies that much lower
  bufferedStartS?: number // the ULID: minted after the camera's buffered first frames were taken, up to this
  driftLeftS?: number // the video's clock off its rate, not corrected: how far apart they are at its end
}): [number, number] {
  // Never narrower than one event's timing (a click block, a sliver of a frame): pairs that all agree to
  // the block still hold the truth only to it.
  if (b.eventsSpreadS != null) {
    const halfS = Math.max(b.eventsSpreadS, EVENT_TIMING_FLOOR_S)
    return [b.offsetS - halfS, b.offsetS + halfS]
  }
  // The drift left is the error at the video's end: either way, as the mux may start anywhere along it.
  const sharedS =
    (b.audioUncertaintyS ?? 0) +
    (b.videoUncertaintyS ?? 0) +
    b.cardClockS +
    (b.latency.uncertaintyS ?? 0) +
    (b.driftLeftS ?? 0)
  const aboveS =
    (b.latency.source === 'unmeasured' ? UNMEASURED_LATENCY_MAX_S + (b.framePeriodS ?? 0) : 0) + (b.bufferedStartS ?? 0)
  // Anchors that disagree, with nothing to decide between them: the bounds hold the other's offset too.
  const apartS = b.anchorsApartS ?? []
  const [belowS, overS] = [Math.max(0, ...apartS), Math.max(0, ...apartS.map((d) => -d))]
  return [b.offsetS - sharedS - belowS, b.offsetS + sharedS + aboveS + overS]
}

/** The video's drift the mux does not correct (no -itsscale): the whole of it at the video's end. */
export function driftLeftS(t: Pick<VideoTiming, 'driftAtEndMs' | 'itsscale'>): number {
  return t.itsscale == null && t.driftAtEndMs != null ? Math.abs(t.driftAtEndMs) / 1000 : 0
}

/** A ± as the line says it: `± 4 ms`, or `+266/−4 ms` when the bounds are not the same either way. */
export function describeBounds(offsetS: number, [lowS, highS]: [number, number]): string {
  const [aboveMs, belowMs] = [(highS - offsetS) * 1000, (offsetS - lowS) * 1000]
  if (Math.abs(aboveMs - belowMs) < 1) return `± ${Math.max(aboveMs, belowMs).toFixed(0)} ms`
  return `+${aboveMs.toFixed(0)}/−${belowMs.toFixed(0)} ms`
}

/** What the summary says of the latency applied: a few words; unmeasured, once, how to measure it. */
export function latencyNotes(l: CameraLatency, c: { file: string; mode: string | null; others: string[] }): Note[] {
  const ms = (s: number) => (s * 1000).toFixed(0)
  if (l.source === 'calibration')
    return [
      {
        kind: 'plain',
        text:
          `  Camera latency ${ms(l.latencyS)} ± ${ms(l.uncertaintyS ?? 0)} ms kept from ${l.sessions}` +
          ` session${l.sessions === 1 ? '' : 's'} (${c.file}).`,
      },
    ]
  if (l.source === 'flag')
    return [
      {
        kind: 'plain',
        text: `  Camera latency ${ms(l.latencyS)} ms from --camera-latency (its ± unknown: not in the figure).`,
      },
    ]
  if (l.source !== 'unmeasured') return []
  const elsewhere = c.others.length ? ` (${c.file} has ${c.others.join(', ')}: another mode's is not this one's)` : ''
  return [
    {
      kind: 'advice', // once per run, at the end: what to do once for every later recording
      key: 'latency-unmeasured',
      changes: true,
      text:
        `  Camera latency unmeasured for ${c.mode ?? 'this video'}${elsewhere}: not in the figure, its ± allows` +
        ` up to ${ms(UNMEASURED_LATENCY_MAX_S)} ms for it. Measure it once: record with --events (a flash seen` +
        ' with a click heard, at irregular gaps); later recordings of this camera and mode get it by themselves.',
      short:
        `  Camera latency unmeasured${c.others.length ? ' for this mode' : ''}: not in the figure;` +
        ' measure it once with --events.',
    },
  ]
}

/** This recording's measurement, said: kept (and how it stands with what was), moved, or not kept and why. */
export function measuredLatencyNote(
  m: LatencyMeasurement,
  k: {
    file: string
    keptBefore: KeptLatency | null
    movedS: number | null
    keptAfter: KeptLatency | null
    notKept: string | null
  },
): Note {
  const ms = (s: number) => (s * 1000).toFixed(0)
  const keptText = (kept: KeptLatency) => `${ms(kept.latencyS)} ± ${ms(kept.uncertaintyS)} ms`
  const measured = `${(m.medianS * 1000).toFixed(1)} ms (spread ${(m.spreadS * 1000).toFixed(1)} ms, ${m.pairs} pairs)`
  if (k.notKept) return { kind: 'plain', text: `  Camera latency measured: ${measured}; not kept: ${k.notKept}.` }
  const after = k.keptAfter as KeptLatency
  const sessions = `${after.sessions} session${after.sessions === 1 ? '' : 's'}`
  if (k.movedS != null && k.keptBefore)
    return {
      kind: 'warning',
      text:
        `⚠ Camera latency measured: ${measured}, ${signed(k.movedS * 1000, 0, 'ms')} from the` +
        ` ${keptText(k.keptBefore)} kept: the camera or its settings changed, or its latency moves at each start.` +
        ` Both kept in ${k.file}; applied from now on: ${keptText(after)} (${sessions}).`,
      short:
        `⚠ Camera latency ${ms(m.medianS)} ms, ${signed(k.movedS * 1000, 0, 'ms')} from the ${keptText(k.keptBefore)}` +
        ` kept (camera changed?): both kept, now ${keptText(after)}.`,
    }
  return {
    kind: 'plain',
    text: `  Camera latency measured: ${measured}, kept in ${k.file} (${keptText(after)} from ${sessions}).`,
  }
}

// ── Sync arithmetic and the mux command ──────────────────────────────────────────────────────

export interface MuxInput {
  audioFile: string
  videoFile: string
  muxedFile: string
  sampleRate: number
  channels: number
  offsetS: number // audioStartEpochS − videoStartEpochS
  videoDurationS: number | null // on the output timeline; null while the video is unfinished: the audio is not cut
  itsscale?: number | null // retimes the copied video to its real span (drift)
  clockRatio?: number // the sound card's real rate over its nominal one: the timeline becomes the card's
  title?: string // the audio stream's title: its device, when there are several
  more?: MoreAudio[] // the other devices' recordings, each its own audio stream after the first
}

/** Another device's recording in the same muxed file: placed by its own first sample, timed by its own card. */
export interface MoreAudio {
  audioFile: string
  sampleRate: number
  channels: number
  offsetS: number
  title: string
  clockRatio?: number // its own card's real rate over its nominal one (1: on time, or not measured)
}

/** The sample rates ffmpeg's AAC encoder takes. */
export const AAC_RATES = [7350, 8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 64000, 88200, 96000]
export const FLAC_MAX_RATE = 655350
export const AAC_FLAC_MAX_CHANNELS = 8

export interface MuxCodec {
  codec: 'aac' | 'flac' | 'pcm_s16le'
  container: 'mp4' | 'mkv'
  frameSamples: number // one packet's samples: how far the muxed audio may end from the video's end
  why: string | null // why not AAC in mp4
}

/** One packet's samples in each codec (ffmpeg's encoders; FLAC's default block size). */
export const FRAME_SAMPLES: Record<MuxCodec['codec'], number> = { aac: 1024, flac: 4608, pcm_s16le: 4096 }

/**
 * The audio codec and container for the muxed file, known from the settings before the first
 * sample: AAC in mp4 where AAC can hold the audio; else every sample kept, as FLAC in Matroska, or
 * as PCM in Matroska past FLAC's limits.
 */
export function muxCodec(sampleRate: number, channels: number): MuxCodec {
  if (AAC_RATES.includes(sampleRate) && channels <= AAC_FLAC_MAX_CHANNELS)
    return { codec: 'aac', container: 'mp4', frameSamples: FRAME_SAMPLES.aac, why: null }
  const why =
    channels > AAC_FLAC_MAX_CHANNELS
      ? `${channels} channels are more than AAC and FLAC hold (${AAC_FLAC_MAX_CHANNELS})`
      : sampleRate > 96000
        ? `${sampleRate} Hz is past AAC's 96 kHz`
        : `AAC has no ${sampleRate} Hz`
  if (sampleRate <= FLAC_MAX_RATE && channels <= AAC_FLAC_MAX_CHANNELS)
    return { codec: 'flac', container: 'mkv', frameSamples: FRAME_SAMPLES.flac, why }
  return { codec: 'pcm_s16le', container: 'mkv', frameSamples: FRAME_SAMPLES.pcm_s16le, why }
}

/** Several devices, one muxed file: Matroska as soon as one of them needs it (each stream keeps its own codec). */
export function muxCodecFor(inputs: { sampleRate: number; channels: number }[]): MuxCodec {
  const codecs = inputs.map((input) => muxCodec(input.sampleRate, input.channels))
  return codecs.find((codec) => codec.container === 'mkv') ?? codecs[0]
}

export const CODEC_NAMES: Record<MuxCodec['codec'], string> = { aac: 'AAC', flac: 'FLAC', pcm_s16le: 'PCM' }

/** The muxed file's name for its container: .mkv in place of .mp4 for Matroska. */
export function muxedNameFor(muxedFile: string, codec: MuxCodec): string {
  return codec.container === 'mkv' ? muxedFile.replace(/\.mp4$/i, '.mkv') : muxedFile
}

export interface MuxPlan {
  args: string[]
  delaySamples: number
  trimSamples: number
  lengthSamples: number | null
  filter: string
  // the other devices', in order; speed: P/Q, how much faster than its nominal rate its samples are played
  more: { delaySamples: number; trimSamples: number; filter: string; speed: Speed | null }[]
}

/**
 * A stream played faster than its nominal rate by (nudge / rate) × P / Q: asetrate=nudge first when
 * the ratio is too fine for P/Q alone, then aresample=Q, asetrate=P, aresample back to its rate.
 */
export interface Speed {
  nudgeHz: number | null // rate ± 1, or null
  upHz: number // Q
  asHz: number // P
  ratio: number // as applied
  errorPpm: number // against the ratio wanted
}

/** The widest intermediate rate, as a multiple of the stream's: the resampling's cost grows with it. */
export const SPEED_MAX_UPSAMPLE = 4
/** Close enough to the ratio wanted that a larger intermediate rate is not worth its cost (36 µs an hour). */
export const SPEED_ENOUGH_PPM = 0.01

/** The P/Q closest to `ratio`, Q from `rate` to SPEED_MAX_UPSAMPLE × rate: the smallest Q within SPEED_ENOUGH_PPM. */
function closestFraction(ratio: number, rate: number): { q: number; p: number; errorPpm: number } {
  let best = { q: rate, p: rate, errorPpm: (1 / ratio - 1) * 1e6 }
  for (let q = rate; q <= SPEED_MAX_UPSAMPLE * rate; q++) {
    const p = Math.round(ratio * q)
    const errorPpm = (p / q / ratio - 1) * 1e6
    if (Math.abs(errorPpm) < Math.abs(best.errorPpm)) best = { q, p, errorPpm }
    if (Math.abs(errorPpm) <= SPEED_ENOUGH_PPM) break
  }
  return best
}

/**
 * How to play a stream `ratio` times faster than its nominal rate, sample-accurate (SYNC.md's drift:
 * asetrate then aresample, not atempo). asetrate takes whole hertz only, so at 48 kHz it alone can be
 * 10 ppm off (36 ms an hour); a rate Q from the stream's up to SPEED_MAX_UPSAMPLE times it, relabelled
 * as P, makes P/Q a much finer ratio (1000 ppm at 48 kHz: 48048/48000 exactly). A ratio closer to 1 than
 * the finest step P/Q can take (1 / (SPEED_MAX_UPSAMPLE × rate): 5 ppm at 48 kHz) is first nudged a
 * whole hertz the other way, which leaves P/Q a step it can take. null: 1, or nothing closer than untouched.
 */
export function speedFor(ratio: number, sampleRate: number): Speed | null {
  if (Math.abs(ratio - 1) * SPEED_MAX_UPSAMPLE * sampleRate < 1) {
    const nudgeHz = sampleRate + (ratio >= 1 ? -1 : 1)
    const rest = closestFraction((ratio * sampleRate) / nudgeHz, sampleRate)
    const applied = (nudgeHz / sampleRate) * (rest.p / rest.q)
    const errorPpm = (applied / ratio - 1) * 1e6
    if (ratio === 1 || Math.abs(errorPpm) >= Math.abs(ratio - 1) * 1e6) return null
    return { nudgeHz, upHz: rest.q, asHz: rest.p, ratio: applied, errorPpm }
  }
  const { q, p, errorPpm } = closestFraction(ratio, sampleRate)
  if (p === q || Math.abs(errorPpm) >= Math.abs(ratio - 1) * 1e6) return null
  return { nudgeHz: null, upHz: q, asHz: p, ratio: p / q, errorPpm }
}

/**
 * Late audio gets N samples of silence in front (adelay), early audio loses its first N samples
 * (atrim): both exact to the sample and independent of players' edit-list support, unlike
 * -itsoffset. The audio is then padded or cut to the video's length, unlike -shortest, which
 * overshoots with a copied video stream.
 */
export function muxPlan(m: MuxInput): MuxPlan {
  // On the card's own clock the audio is left sample for sample; wall-clock times become sample
  // counts at its real rate, and the copied video is retimed to match. With several devices the
  // timeline is the first one's card; each other stream is played at its own card's rate against
  // it (speedFor), then placed on it like the first.
  const ratio = m.clockRatio ?? 1
  const itsscale = (m.itsscale ?? 1) * ratio
  const chain = (a: { sampleRate: number; offsetS: number; clockRatio?: number }, first: boolean) => {
    const speed = first ? null : speedFor((a.clockRatio ?? 1) / ratio, a.sampleRate)
    const shiftSamples = Math.round(a.offsetS * a.sampleRate * ratio)
    const delaySamples = Math.max(0, shiftSamples)
    const trimSamples = Math.max(0, -shiftSamples)
    const lengthSamples = m.videoDurationS == null ? null : Math.round(m.videoDurationS * a.sampleRate * ratio)
    const steps = [
      ...(speed
        ? [
            ...(speed.nudgeHz ? [`asetrate=${speed.nudgeHz}`] : []),
            ...(speed.upHz !== (speed.nudgeHz ?? a.sampleRate) ? [`aresample=${speed.upHz}`] : []),
            `asetrate=${speed.asHz}`,
            `aresample=${a.sampleRate}`,
          ]
        : []),
      ...(delaySamples ? [`adelay=delays=${delaySamples}S:all=1`] : []),
      ...(trimSamples ? [`atrim=start_sample=${trimSamples}`, 'asetpts=PTS-STARTPTS'] : []),
      ...(lengthSamples != null ? [`apad=whole_len=${lengthSamples}`, `atrim=end_sample=${lengthSamples}`] : []),
    ]
    return { delaySamples, trimSamples, lengthSamples, filter: steps.length ? steps.join(',') : 'anull', speed }
  }
  const codecArgs = (a: { sampleRate: number; channels: number }, stream: string) => {
    const { codec } = muxCodec(a.sampleRate, a.channels)
    return codec === 'aac' ? [`-c:a${stream}`, 'aac', `-b:a${stream}`, '192k'] : [`-c:a${stream}`, codec]
  }
  const { speed: _, ...first } = chain(m, true)
  const more = (m.more ?? []).map((a) => chain(a, false))
  const retime = m.itsscale || ratio !== 1 ? ['-itsscale', itsscale.toFixed(9)] : []
  const head = ['-hide_banner', '-n', ...retime, '-i', m.videoFile] // -n: never overwrite an existing output
  const video = ['-c:v', 'copy'] // the recording itself is never re-encoded
  if (!m.more?.length) {
    const args = [
      ...head,
      ...['-i', m.audioFile, '-map', '0:v:0', '-map', '1:a:0', ...video, '-filter:a', first.filter],
      ...codecArgs(m, ''),
      m.muxedFile,
    ]
    return { args, ...first, more: [] }
  }
  // Several devices: one filter chain and one titled audio stream each, in --device order.
  const audios = [m, ...m.more]
  const graph = [first, ...more].map((c, k) => `[${k + 1}:a:0]${c.filter}[a${k}]`).join(';')
  const args = [
    ...head,
    ...audios.flatMap((a) => ['-i', a.audioFile]),
    ...['-filter_complex', graph, '-map', '0:v:0'],
    ...audios.flatMap((_, k) => ['-map', `[a${k}]`]),
    ...video,
    // A track's name: mp4 keeps it as its handler name (and drops a title), Matroska as its title.
    ...audios.flatMap((a, k) => [
      ...codecArgs(a, `:${k}`),
      `-metadata:s:a:${k}`,
      `${/\.mkv$/i.test(m.muxedFile) ? 'title' : 'handler_name'}=${a.title ?? ''}`,
    ]),
    m.muxedFile,
  ]
  return { args, ...first, more }
}

const POSIX_SAFE = /^[A-Za-z0-9_/.,:@%+-][A-Za-z0-9_/.,:@%+=-]*$/ // '=' first is a zsh expansion

/** Quoting that bash, zsh and sh all read back as the same word, whatever the bytes. */
export function quotePosix(arg: string): string {
  if (POSIX_SAFE.test(arg)) return arg
  return `'${arg.replace(/'/g, `'\\''`)}'`
}

/** PowerShell: single quotes, each of its four single-quote characters doubled. */
export function quotePowerShellArg(arg: string): string {
  // No bare comma: PowerShell reads a,b as an array of two.
  if (/^[A-Za-z0-9_/.:\\-]+$/.test(arg) && !arg.startsWith('-')) return arg
  return `'${arg.replace(/['\u2018\u2019\u201a\u201b]/g, (q) => q + q)}'`
}

export function formatCommand(file: string, args: string[], platform: Platform): string {
  if (platform === 'win32')
    return ['&', quotePowerShellArg(file), ...args.map((a) => (/^-[\w:]+$/.test(a) ? a : quotePowerShellArg(a)))].join(
      ' ',
    )
  return [file, ...args].map(quotePosix).join(' ')
}

export function describeOffset(offsetS: number): string {
  const ms = Math.abs(offsetS * 1000).toFixed(1)
  if (Math.abs(offsetS) < 0.0005) return 'audio and video started together (offset 0.0 ms)'
  return offsetS > 0
    ? `audio started ${ms} ms after the video's first frame: ${ms} ms of silence go before it`
    : `audio started ${ms} ms before the video's first frame: its first ${ms} ms are cut`
}

/** How much of the video (on its output timeline) the audio covers; the rest is silence in the muxed file. */
export function audioCoverage(
  offsetS: number,
  audioDurationS: number,
  videoDurationS: number,
): { coveredS: number; silenceBeforeS: number; silenceAfterS: number } {
  const clamp = (x: number) => Math.min(videoDurationS, Math.max(0, x))
  const audioEndS = offsetS + audioDurationS // on the video's timeline
  return {
    coveredS: Math.max(0, clamp(audioEndS) - clamp(offsetS)),
    silenceBeforeS: clamp(offsetS),
    silenceAfterS: videoDurationS - clamp(audioEndS),
  }
}

export interface VideoRow {
  video: string // as the user should read it: relative to where they are
  offsetS: number | null
  anchor: string | null
  coveredS: number | null
  videoDurationS: number | null
  made: string // the muxed file, or what stands in its place
}

/** --all-videos' closing table: one line per video, columns aligned. */
export function videoTable(rows: VideoRow[]): string[] {
  const cells = rows.map((r) => [
    r.video,
    r.offsetS == null ? '—' : signed(r.offsetS, 3, 's'),
    r.anchor ?? '—',
    r.coveredS == null || r.videoDurationS == null
      ? '—'
      : `${r.coveredS.toFixed(1)} of ${r.videoDurationS.toFixed(1)} s`,
    r.made,
  ])
  const header = ['video', 'offset (audio − video)', 'anchor', 'audio covers', 'made']
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i].length)))
  return [header, ...cells].map((c) => `  ${c.map((x, i) => x.padEnd(widths[i])).join('  ')}`.trimEnd())
}

export function installHint(platform: Platform): string {
  if (platform === 'darwin') return 'brew install ffmpeg'
  if (platform === 'win32') return 'winget install ffmpeg'
  return "sudo apt-get install ffmpeg (Debian/Ubuntu) or your distribution's ffmpeg package"
}

// ── The summary ──────────────────────────────────────────────────────────────────────────────

/**
 * What the run has to say, typed: the summary at the stop is rendered from these (renderNotes), and
 * the sync file keeps them all. ok: a figure with a second witness (✔); plain: a figure or a fact;
 * warning: a doubt (⚠); error: a failure (✖); detail: the reasoning, shown with --verbose;
 * advice: what the user could do next time, said once per run (by key), at the end.
 */
export type NoteKind = 'ok' | 'plain' | 'warning' | 'error' | 'detail' | 'advice'

export interface Note {
  kind: NoteKind
  text: string // the whole line, as --verbose and the sync file have it
  short?: string // the default summary's line, when the whole one says more than a glance needs
  key?: string // said once per run: the first note with a key stands for all
  changes?: boolean // advice: following it would change this run's result (else only --verbose says it)
  topic?: 'audio' | 'video' // audio: the recording's own, kept when `mux` later redoes the video's
}

/** Every default line is written to fit this many columns; a terminal's own width then wraps it (wrapLine). */
export const SUMMARY_WIDTH = 120

const ANSI = new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*[A-Za-z]`, 'g') // a color: no column
const columnsOf = (text: string) => [...text.replace(ANSI, '')].length

/**
 * A line as a terminal `width` columns wide shows it: broken at spaces, each further piece indented
 * two past the line's own indent; nothing is ever cut. A command to copy (from `record-audio ` on) is
 * one piece, never broken: the terminal folds it, and a copy of it still runs.
 */
export function wrapLine(line: string, width: number | null): string[] {
  if (width == null || width < 20 || columnsOf(line) <= width) return [line]
  const lead = /^ */.exec(line)?.[0] ?? ''
  const indent = `${lead}  `
  const body = line.slice(lead.length)
  const command = body.indexOf('record-audio ')
  const words = (command >= 0 ? body.slice(0, command) : body).split(' ').filter((word) => word !== '')
  if (command >= 0) words.push(body.slice(command))
  const lines: string[] = []
  let current = lead
  for (const word of words) {
    const next = current.trim() === '' ? current + word : `${current} ${word}`
    if (current.trim() !== '' && columnsOf(next) > width) {
      lines.push(current)
      current = indent + word
    } else current = next
  }
  lines.push(current)
  return lines
}

/**
 * The summary's lines: the notes in their order, advice last; details and advice that changes
 * nothing only with --verbose; a keyed note once (saidKeys: those said earlier in the run); by
 * default the short forms, each written to fit SUMMARY_WIDTH (none is cut: say wraps to the terminal).
 */
export function renderNotes(notes: Note[], o: { verbose: boolean; saidKeys?: readonly string[] }): string[] {
  const said = new Set(o.saidKeys ?? [])
  // Nothing is cut: what failed and the fix are both needed, whatever the width.
  const line = (n: Note) => (o.verbose || n.kind === 'error' ? n.text : (n.short ?? n.text))
  const lines: string[] = []
  for (const n of notes) {
    if (n.kind === 'advice' || (n.kind === 'detail' && !o.verbose)) continue
    if (n.key != null && said.has(n.key)) continue
    if (n.key != null) said.add(n.key)
    lines.push(line(n))
  }
  const advice = new Map<string, Note>()
  for (const n of notes.filter((n) => n.kind === 'advice')) {
    const key = n.key ?? n.text
    if (said.has(key)) continue
    const before = advice.get(key)
    if (!before || (n.changes && !before.changes)) advice.set(key, n) // one that changes the result speaks for all
  }
  for (const n of advice.values()) if (n.changes || o.verbose) lines.push(line(n))
  return lines
}

/**
 * Every signed figure said (s, ms, ppm): the minus a real one, a zero with ±, as rounded:
 * signed(-2.0241, 3, 's') → "−2.024 s", signed(0.0001, 1, 'ms') → "±0.0 ms".
 */
export function signed(value: number, digits: number, unit: string): string {
  const text = Math.abs(value).toFixed(digits)
  const sign = Number(text) === 0 ? '±' : value > 0 ? '+' : '−'
  return `${sign}${text}${unit ? ` ${unit}` : ''}`
}

/** A path as the user should read it: relative to where they stand when it is below it. */
export function shownPath(file: string, cwd: string): string {
  const relative = path.relative(cwd, file)
  return relative && !relative.startsWith('..') && !path.isAbsolute(relative) ? relative : file
}

/**
 * A recording's name for a glance: its folder and its ULID's first four and last two letters, more of
 * its end when another recording in its folder (neighbours: their names) would read the same: the
 * shown end is then one no neighbour's ends with (a ULID's case is not a difference), so no two names
 * shown read alike and none is a shorter one's continuation; the whole name when nothing shorter does
 * (the same ULID in another case).
 */
export function shortVideoName(file: string, cwd: string, neighbours: readonly string[] = []): string {
  const shown = shownPath(file, cwd)
  const base = path.basename(shown)
  if (!RECORDING_NAME.test(base)) return shown
  const ulid = base.slice(0, 26).toUpperCase()
  const others = neighbours
    .map((n) => path.basename(n))
    .filter((n) => n !== base && RECORDING_NAME.test(n))
    .map((n) => n.slice(0, 26).toUpperCase())
  let tail = 2
  while (tail < 22 && others.some((n) => n.slice(26 - tail) === ulid.slice(26 - tail))) tail++
  return path.join(path.dirname(shown), tail < 22 ? `${base.slice(0, 4)}…${base.slice(26 - tail)}` : base)
}

/** What the video's notes need beyond its part of the record. */
export interface VideoContext {
  cwd: string // paths below it are shown relative to it
  audioCheck: StartCheckKind | null // the first sample's check: a second witness of the audio's start
  audioUncertaintyS: number | null
  devices: string[] // the devices' names, in --device order, when there are several
  csvNote: string | null // a tracking CSV found and not used, and why
  csvEpochUncertaintyS: number | null // the frame clock's epoch, when one was used
  cameraLatencyS: number
  latencyNotes?: Note[] // the camera latency applied, in a few words (latencyNotes)
  codecLine: string | null // the muxed file is not an mp4 with AAC, and why
  eventsAsked: boolean
  eventNotes: Note[] // what --events said (eventsFor)
  audioDoubtful?: boolean // the WAV's length disagrees with the wall time since its first sample
  movedFromStopS?: number | null // mux later: how far the offset moved from the stop's, with nothing to explain it
  neighbours?: string[] // the recordings in the video's folder, by name: its short name reads like none of theirs
  otherAudios?: Pick<AudioFacts, 'startCheck' | 'startUncertaintyS' | 'startDoubtful'>[] // each other device's start
}

const ANCHOR_WORDS: Record<VideoTiming['source'], string> = {
  'video-start-flag': 'from --video-start',
  'tracking-csv':
    "when the camera took it, plus TracktorLive's shortest read and tracking time: the tracking CSV's frame clock",
  timesync: "when the camera took it, plus TracktorLive's shortest read and tracking time: the timesync file's rows",
  ulid: 'from the ULID in its name, minted just before the first frame',
}

const ANCHOR_NAMES: Record<VideoTiming['source'], string> = {
  'video-start-flag': '--video-start',
  'tracking-csv': 'tracking CSV',
  timesync: 'timesync',
  ulid: 'ULID',
}

const COVER_WORTH_SAYING_S = 0.05 // less is the usual: the audio runs from before the video to after it

/**
 * The figure has a second witness (✔) when the first sample's check agreed with its stamp, the
 * anchors agree (a ULID only once the mtime can check it), the tracking CSV's epoch had no doubt,
 * and --events, if asked, was used; a
 * disagreement is a ⚠; a check that could not decide leaves the line plain.
 */
export function videoMark(
  v: VideoSync,
  c: Pick<VideoContext, 'audioCheck' | 'eventsAsked'> &
    Partial<Pick<VideoContext, 'audioUncertaintyS' | 'audioDoubtful' | 'movedFromStopS'>>,
): '✔' | '⚠' | ' ' {
  const eventsFailed = c.eventsAsked && !v.events?.applied
  const rateDoubt = frameRateDoubtful(v) && !v.events?.applied // the events witness the rate
  if (v.anchorWarnings.length || v.trackingCsvNote || eventsFailed || rateDoubt) return '⚠'
  if (tieBrokenByAnchors(v) || c.audioDoubtful || c.movedFromStopS != null) return '⚠'
  const disagreed = ['stamp-late', 'stamp-early', 'no-stamp', 'undecided', 'loose'] as const
  if (disagreed.some((kind) => kind === c.audioCheck)) return '⚠'
  // No second witness: the user's --video-start, and the ULID, whose buffered start (0.1–0.7 s with a
  // live camera) neither it nor the mtime shows; the events witness either.
  const videoWitnessed =
    v.events?.applied === true || (v.videoStartSource !== 'ulid' && v.videoStartSource !== 'video-start-flag')
  // Witnessed, and known within about a frame: a stamp 200 ms before its samples' arrival is a queue
  // the files cannot tell from an early stamp, so its ± is that wide: no ✔ on it.
  const known = lineUncertaintyS(v, c) <= TRUSTED_WITHIN_S
  // The default latency of 0 is a guess, not a measurement, and a --camera-latency has no ± of its own:
  // only a latency measured (here, or kept from earlier sessions) gives the figure a ✔.
  const latencyKnown = v.cameraLatencySource === 'events' || v.cameraLatencySource === 'calibration'
  return c.audioCheck === 'plausible' && videoWitnessed && known && latencyKnown ? '✔' : ' '
}

/** The events' offset was chosen by the anchors among equally supported candidates (a regular train). */
function tieBrokenByAnchors(v: VideoSync): boolean {
  return v.events?.notes?.some((note) => note.kind === 'tie-broken-by-anchors') === true
}

/** The ✔ needs the offset known within this: a frame at 30 fps, and the ULID's own ± (a frame). */
export const TRUSTED_WITHIN_S = 0.04

/** How far the offset may be off: the video's start (or the events' spread) and the audio's, together. */
export function lineUncertaintyS(v: VideoSync, c: Partial<Pick<VideoContext, 'audioUncertaintyS'>>): number {
  // The bounds hold every term (offsetBounds): their wider side.
  if (v.offsetBoundsS && v.offsetS != null)
    return Math.max(v.offsetBoundsS[1] - v.offsetS, v.offsetS - v.offsetBoundsS[0])
  // A tie the anchors broke rests on the anchors: their ±, not the events' spread.
  const events = v.events?.applied && !tieBrokenByAnchors(v) ? v.events : null
  const videoUncertaintyS = events ? (events.spreadMs ?? 0) / 1000 : (v.videoStartUncertaintyS ?? 0)
  return Math.hypot(videoUncertaintyS, events ? 0 : (c.audioUncertaintyS ?? 0))
}

/**
 * The offset as a scientist reads it, with what the mux does to the audio for it and, given, what placed
 * the video: audioStartsWords(-4.865, ' ± 4 ms', 'ULID') → "audio starts 4.865 s ± 4 ms before the video
 * (cut; ULID)".
 */
export function audioStartsWords(offsetS: number, uncertainty = '', anchor: string | null = null): string {
  const s = Math.abs(offsetS).toFixed(3)
  const by = anchor ? ` (${anchor})` : ''
  if (Number(s) === 0) return `audio starts with the video${uncertainty}${by}`
  return offsetS < 0
    ? `audio starts ${s} s${uncertainty} before the video (cut${anchor ? `; ${anchor}` : ''})`
    : `audio starts ${s} s${uncertainty} after the video${by}`
}

/** The video's clock off its nominal rate, by default: said when corrected, or when too far and kept. */
function driftWords(v: VideoSync, short: boolean): string | null {
  if (v.driftPpm == null) return null
  const ppm = signed(v.driftPpm, 0, 'ppm')
  if (v.itsscale) return short ? `retimed ${ppm}` : `video retimed ${ppm} to its real rate`
  const framePeriodMs = v.videoNominalFps ? 1000 / v.videoNominalFps : 40
  if (v.driftAtEndMs == null || Math.abs(v.driftAtEndMs) <= framePeriodMs) return null // within a frame
  return short ? `clock ${ppm}, kept` : `video clock ${ppm} off, not corrected`
}

/** The words say how far before or after the video: the bounds turned with them (+ is further from the video). */
function turnedBounds(offsetS: number, [lowS, highS]: [number, number]): string {
  return describeBounds(Math.abs(offsetS), offsetS < 0 ? [-highS, -lowS] : [lowS, highS])
}

/** A video's default line: its name, where the audio starts ± its uncertainty (anchor), what was corrected. */
export function videoLine(v: VideoSync, c: VideoContext): string {
  const offsetS = v.offsetS ?? 0
  const events = v.events?.applied ? v.events : null
  const uncertaintyMs = lineUncertaintyS(v, c) * 1000
  const anchor = events ? 'events' : v.videoStartSource ? ANCHOR_NAMES[v.videoStartSource] : '?'
  const head = `${videoMark(v, c)} ${shortVideoName(v.videoFile as string, c.cwd, c.neighbours)}  `
  // The words say how far before or after the video: the bounds turned with them (+ is further from the video).
  const [lowS, highS] = v.offsetBoundsS ?? [offsetS - uncertaintyMs / 1000, offsetS + uncertaintyMs / 1000]
  const plusMinus = turnedBounds(offsetS, [lowS, highS])
  const starts = audioStartsWords(offsetS, ` ${plusMinus}`, anchor)
  const disagree = v.anchorWarnings.length ? ['anchors disagree'] : []
  // Written to fit: the drift shortened, then left to --verbose, before anything else.
  const fitting = [driftWords(v, false), driftWords(v, true), null]
    .map((drift) => head + [starts, ...(drift ? [drift] : []), ...disagree].join('; '))
    .find((line) => [...line].length <= SUMMARY_WIDTH)
  return fitting ?? `${head}${[starts, ...disagree].join('; ')} (--verbose: the drift)`
}

/** Everything said of one video, typed: the default line, the corrections, the warnings, the details, the advice. */
export function videoNotes(v: VideoSync, c: VideoContext): Note[] {
  const video: Note = { kind: 'plain', text: videoLine(v, c), topic: 'video' }
  const mark = videoMark(v, c)
  const notes: Note[] = [{ ...video, kind: mark === '✔' ? 'ok' : mark === '⚠' ? 'warning' : 'plain' }]
  notes.push(...(c.latencyNotes ?? []))
  if (c.codecLine) notes.push({ kind: 'plain', text: c.codecLine, key: 'codec' })
  if (c.movedFromStopS != null)
    notes.push({
      kind: 'warning',
      text:
        `⚠ ${path.basename(v.videoFile as string)}: the offset is ${signed(c.movedFromStopS * 1000, 1, 'ms')} from` +
        " the stop's, with the same timing: the files changed since (a video or CSV copied, touched or" +
        ' rewritten?). Not muxed: check which is right.',
    })
  notes.push(...c.eventNotes, ...moreDeviceNotes(v, c), ...videoDetails(v, c))
  if (c.csvNote) notes.push({ kind: 'detail', text: `  Frame clock: ${c.csvNote}.` })
  for (const warning of v.anchorWarnings) notes.push({ kind: 'detail', text: `⚠ Anchors: ${warning}.` })
  const drift = driftDetail(v)
  if (drift) notes.push({ kind: 'detail', text: drift })
  notes.push(...videoAdvice(v, c))
  return notes
}

/**
 * The other devices: each one's offset with its own mark and ± (the video's rule, videoMark, with its own
 * start's check and bounds, and its own --events verdict), and its card's rate when played at its own.
 */
function moreDeviceNotes(v: VideoSync, c: VideoContext): Note[] {
  return (v.audioPlacements ?? []).slice(1).flatMap((p, k) => {
    const title = JSON.stringify(c.devices[k + 1] ?? path.basename(p.audioFile))
    const ppm = p.speed ? signed((p.speed.ratio - 1) * 1e6, 0, 'ppm') : ''
    const own = c.otherAudios?.[k]
    const device = { ...v, offsetS: p.offsetS, offsetBoundsS: p.offsetBoundsS ?? null, events: p.events ?? null }
    const facts = {
      ...c,
      audioCheck: own?.startCheck ?? null,
      audioUncertaintyS: own?.startUncertaintyS ?? null,
      audioDoubtful: own?.startDoubtful,
    }
    const mark = videoMark(device, facts)
    const uncertaintyS = lineUncertaintyS(device, facts)
    const plusMinus = turnedBounds(p.offsetS, p.offsetBoundsS ?? [p.offsetS - uncertaintyS, p.offsetS + uncertaintyS])
    const anchor = p.events?.applied ? 'events' : v.videoStartSource ? ANCHOR_NAMES[v.videoStartSource] : '?'
    const head = `${mark} ${title}  ${audioStartsWords(p.offsetS, ` ${plusMinus}`, anchor)}`
    // Written to fit: the card's rate shortened, then left to --verbose.
    const text = [`; its card ${ppm} against the first's, resampled`, `; card ${ppm}, resampled`, '']
      .map((speed) => head + (p.speed ? speed : ''))
      .find((line) => [...line].length <= SUMMARY_WIDTH)
    const kind = mark === '✔' ? 'ok' : mark === '⚠' ? 'warning' : 'plain'
    const notes: Note[] = [
      { kind, text: text ?? head },
      { kind: 'detail', text: `  Offset, ${title}: ${describeOffset(p.offsetS)}.` },
    ]
    if (p.speed)
      notes.push({
        kind: 'detail',
        text:
          `  Clock, ${title}: its card runs ${signed((p.speed.ratio - 1) * 1e6, 0, 'ppm')} against the first's:` +
          ` played at that rate (× ${p.speed.ratio.toFixed(9)}, resampled), to stay on the video's timeline.`,
      })
    return notes
  })
}

/** What --verbose says today of the video: the first frame, the offset in words, the coverage, the frame clock. */
function videoDetails(v: VideoSync, c: VideoContext): Note[] {
  const duration = v.videoDurationS == null ? '' : `, ${v.videoDurationS.toFixed(2)} s`
  const length = v.videoFinalized ? ` (finalized${duration})` : ' (not finalized yet)'
  const source = v.videoStartSource ?? 'ulid'
  const first = new Date((v.videoStartEpochS ?? 0) * 1000).toISOString()
  const offset = `  Offset${c.devices.length > 1 ? `, ${JSON.stringify(c.devices[0])}` : ''}`
  const notes: Note[] = [
    {
      kind: 'detail',
      text:
        `✔ Video: ${shownPath(v.videoFile as string, c.cwd)}${length}, first frame at ${first}` +
        ` ± ${((v.videoStartUncertaintyS ?? 0) * 1000).toFixed(0)} ms (${ANCHOR_WORDS[source]})`,
    },
    { kind: 'detail', text: `${offset}: ${describeOffset(v.offsetS ?? 0)}.` },
  ]
  const before = v.silenceBeforeS ?? 0
  const after = v.silenceAfterS ?? 0
  if (v.videoDurationS != null && v.silenceBeforeS != null && before + after > COVER_WORTH_SAYING_S)
    notes.push({
      kind: 'detail',
      text:
        `  The audio covers ${(v.videoDurationS - before - after).toFixed(1)} s of the video's` +
        ` ${v.videoDurationS.toFixed(1)} s: the muxed file has ${before.toFixed(1)} s of silence before its` +
        ` first sample and ${after.toFixed(1)} s after its last.`,
    })
  if (v.trackingCsvNote)
    notes.push({
      kind: 'warning',
      text: `⚠ Frame clock: ${v.trackingCsvNote}.`,
      short: "⚠ Frame clock: the tracking CSV's epoch witnesses disagree; the sync file and --verbose say how.",
    })
  if (frameRateDoubtful(v)) {
    const pct = signed(((v.cameraFps as number) / (v.videoNominalFps as number) - 1) * 100, 2, '%')
    notes.push({
      kind: 'warning',
      text:
        `⚠ Frame clock: the frames came at ${(v.cameraFps as number).toFixed(3)} fps, ${pct} off the nominal` +
        ` ${v.videoNominalFps} fps: a camera that drops frames and a reader falling steadily behind its camera` +
        ' look alike in the CSV; the video follows the CSV (--no-drift-fix: the nominal rate; --events tells which).',
      short: `⚠ Frame clock: frames at ${pct} off the nominal rate: dropped frames or a slow reader (--events tells).`,
    })
  }
  const clock = frameClockDetail(v, c)
  if (clock) notes.push({ kind: 'detail', text: clock })
  return notes
}

/**
 * A crystal keeps a camera within 0.01 % of its rate: a frame clock further than this from the nominal
 * one is a camera dropping frames or a reader falling steadily behind, which the CSV cannot tell apart.
 */
export const FRAME_RATE_DOUBT = 0.005

/** Whether the frame clock's rate is too far from the nominal one to be taken on its own word. */
export function frameRateDoubtful(v: Pick<VideoSync, 'cameraFps' | 'videoNominalFps'>): boolean {
  if (v.cameraFps == null || !v.videoNominalFps) return false
  return Math.abs(v.cameraFps / v.videoNominalFps - 1) > FRAME_RATE_DOUBT
}

/** The frame clock's story: where its epoch comes from, the camera's rate, its buffered burst, its stalls. */
function frameClockDetail(v: VideoSync, c: VideoContext): string | null {
  if (v.cameraFps == null || (v.videoStartSource !== 'tracking-csv' && v.videoStartSource !== 'timesync')) return null
  const csv = path.basename(v.trackingCsvFile ?? '')
  const stamped =
    v.videoStartSource === 'timesync' || v.trackingCsvEpochSource == null
      ? `${path.basename(v.timesyncFile ?? '')}'s rows, on the server's wall clock`
      : v.trackingCsvEpochSource === 'watched'
        ? `${csv} on the wall clock by its rows stamped as they arrived`
        : `${csv} on the wall clock by its mtime (the last row's write)`
  const ms = (seconds: number) => (seconds * 1000).toFixed(0)
  return [
    `  Frame clock: ${stamped}`,
    ` ± ${((c.csvEpochUncertaintyS ?? 0) * 1000).toFixed(1)} ms; camera at ${v.cameraFps.toFixed(4)} fps`,
    v.bufferedFrames
      ? `; the first ${v.bufferedFrames} frames came from its buffer, frame 0 read ${ms(v.firstReadLateS ?? 0)} ms late`
      : '',
    v.offLineFrames ? `; ${v.offLineFrames} later frames read over two periods late (stalls or drops)` : '',
    c.cameraLatencyS ? `; ${ms(c.cameraLatencyS)} ms camera latency taken off` : '',
    '.',
  ].join('')
}

/** The drift's reasoning: what measured the real span, how far off it is, and whether it was corrected. */
export function driftDetail(v: VideoSync): string | null {
  if (v.driftPpm == null || v.driftAtEndMs == null) return null
  const from =
    v.videoSpanSource === 'tracking-csv'
      ? "the tracking CSV's frame clock"
      : v.videoSpanSource === 'timesync'
        ? "the timesync rows' frame clock"
        : "start to mtime, so the video's end is anchored to its mtime"
  const how = v.itsscale
    ? `corrected with -itsscale ${v.itsscale.toFixed(6)} (video copied, retimed to wall time): `
    : ''
  return (
    `  Drift: the video's real span (${from}) is ${v.driftPpm.toFixed(0)} ppm off its nominal` +
    ` ${v.videoNominalFps} fps, ${v.driftAtEndMs.toFixed(1)} ms at the end: ${how}${v.driftReason}.`
  )
}

/** What would change the result next time: a tracking CSV (-w), a timesync file, waiting for the video. */
function videoAdvice(v: VideoSync, c: VideoContext): Note[] {
  const notes: Note[] = []
  if (v.videoStartSource === 'ulid')
    notes.push({
      kind: 'advice',
      key: 'record-with-w',
      changes: c.csvNote == null, // with a tracking CSV that could not be used, -w is already on
      text:
        '  With a live camera the first frames wait in its buffer before TracktorLive reads them (0.1–0.7 s' +
        ' measured with TracktorLive 1.0.2), which neither the ULID nor the mtime shows, and the burst that' +
        ' follows makes start → mtime look like a fast camera: record with -w (a tracking CSV) to measure it.',
      short: "  Record with -w (a tracking CSV): the ULID misses the camera's buffered first frames (0.1–0.7 s).",
    })
  if (v.anchorWarnings.length && v.videoStartSource === 'ulid' && !v.timesyncFile)
    notes.push({
      kind: 'advice',
      key: 'timesync',
      changes: true,
      text: "  A timesync file (TracktorLive's timesync cassette) gives the first frame's time and the real rate.",
    })
  if (!v.videoFinalized)
    notes.push({
      kind: 'advice',
      key: 'unfinished',
      changes: true,
      text:
        '⚠ The video is not finalized yet (TracktorLive is still writing it): run the command after the recorder' +
        " has stopped. The audio is not cut to the video's length.",
      short:
        '⚠ A video is not finalized yet (TracktorLive is still writing it): run its command once the recorder stopped.',
    })
  return notes
}

// ── The stop ─────────────────────────────────────────────────────────────────────────────────

/** Every signal that asks the run to stop: ctrl-c, `kill`, a closed terminal. */
export const STOP_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const

/**
 * Signals this close to the last one counted are the same request. Under npx where /bin/sh is
 * bash (Fedora, Arch, macOS), npm forwards the terminal's ctrl-c to the tool, which gets the
 * terminal's own as well, about 1 ms apart; a person pressing ctrl-c twice takes far longer.
 */
export const SAME_REQUEST_MS = 150

export function isNewRequest(lastRequestMs: number, nowMs: number): boolean {
  return nowMs - lastRequestMs >= SAME_REQUEST_MS
}

// ── The sync record ──────────────────────────────────────────────────────────────────────────

/** The settings that shaped the offset: stored, so that `mux` later computes the same one. */
export interface TimingSettings {
  timesyncFile: string | null
  videoStartEpochS: number | null
  clockOffsetS: number
  cameraLatencyS: number | null // null: the kept calibration's, else unmeasured
  calibration: boolean // --no-calibration: false
  driftFix: boolean
  events: boolean // --events
  allVideos: boolean // --all-videos: which videos get an offset, so that mux later makes the same ones
}

export interface RecordedSettings extends SettingsInForce {
  script: string // the file whose settings block was read: an edited copy, a checkout or the package
  scriptSha256: string
}

/**
 * The one file that outlives the run: written when the recording starts, again the moment the
 * first sample's time is known, again at the stop, and last with the video, so that a crash or a
 * kill at any point still leaves the audio's start. `mux` reads it back.
 */
export interface SyncRecord {
  tool: string
  state: 'recording' | 'stopped' | 'synced' // how far the run got when the file was last written
  feedDir: string | null
  audioFile: string
  audioFormat: Format | null
  audioDevice: string | null
  audioStartEpochS: number | null
  audioStartSource: AudioStart['source'] | null
  audioStartStampEpochS: number | null // ffmpeg's stamp, the sound server's latency report (null: none)
  audioStartEnvelopeEpochS: number | null // the samples' arrival: the first was captured no later
  audioStartUncertaintyS: number | null // how far the truth may lie from audioStartEpochS (null: unknown)
  audioStartCheck: StartCheckKind | null // how the stamp and the envelope compared, and which is used
  audioDeliveryLatencyS: number | null // envelope − stamp: the freshest sample's way to the WAV, if the stamp is right
  audioSampleRate: number
  audioChannels: number
  audioDurationS: number | null
  audioWallSpanS: number | null
  audioStartDoubtful: boolean | null
  audioClockHz: number | null // the sound card's measured rate (sample frames per wall-clock second)
  audioClockPpm: number | null
  audioClockUncertaintyPpm: number | null
  audioClockRatio: number // applied: 1 unless the card's clock was measurably off
  // the tracking CSVs' epochs seen while recording (a look's bound each): `mux` later uses them
  trackingCsvWatched: WatchedCsv[] | null
  // several devices: each one's audio fields, in --device order; the ones above are the first that recorded
  audios: AudioPart[] | null
  timing: TimingSettings
  // every setting as the recording had it (the settings block's, or a flag's) and the script that ran
  settings: RecordedSettings | null
  videoFile: string | null
  videoStartEpochS: number | null
  videoStartSource: VideoTiming['source'] | null
  videoStartUncertaintyS: number | null
  videoFinalized: boolean | null
  videoFrames: number | null
  videoNominalFps: number | null
  videoDurationS: number | null
  videoRealSpanS: number | null
  videoSpanSource: VideoTiming['spanSource']
  timesyncFile: string | null // the timesync file used, if one was
  driftPpm: number | null
  driftAtEndMs: number | null
  itsscale: number | null
  driftReason: string | null
  trackingCsvFile: string | null // the tracking CSV whose frame clock was used
  trackingCsvEpochSource: CsvEpoch['source'] | null
  trackingCsvEpochS: number | null // where its time 0 (the server's t_init) was put on the wall clock
  trackingCsvNote: string | null // a witness of that epoch not used, and why (a touched CSV's mtime)
  cameraFps: number | null // the camera's real rate, from the frame clock
  bufferedFrames: number | null // read in a burst from the camera's buffer at the start
  firstReadLateS: number | null
  offLineFrames: number | null
  anchorWarnings: string[]
  events: EventSummary | null // --events: what the flashes and clicks said, and whether it was used
  offsetS: number | null
  offsetBoundsS: [number, number] | null // holds the true offset: every term in it (offsetBounds)
  cameraLatencyS: number | null // taken off the video's times (events: measured on this recording)
  cameraLatencyUncertaintyS: number | null // null: unknown (a flag's, or unmeasured)
  cameraLatencySource: CameraLatencySource | null
  cameraLatencyMeasured: LatencyMeasurement | null // --events: this recording's measurement of it
  delaySamples: number | null
  trimSamples: number | null
  // several devices: where each one's samples go in the muxed file, in the order of its audio streams
  // (speed: how much faster than its nominal rate a stream is played to follow its own card on the first's
  // timeline; null: untouched)
  // (offsetBoundsS: each device's own bounds; events: another device's own --events verdict, the first's null: above)
  audioPlacements:
    | {
        audioFile: string
        offsetS: number
        delaySamples: number
        trimSamples: number
        speed: Speed | null
        offsetBoundsS?: [number, number] | null
        events?: EventSummary | null
      }[]
    | null
  silenceBeforeS: number | null // the muxed file's silence where the audio had not started yet
  silenceAfterS: number | null // … and where it had already stopped
  muxedFile: string | null
  muxArgs: string[] | null
  muxCommand: string | null
  // --all-videos: each overlapping recording's part, oldest first; the fields above are the newest's
  videos: VideoSync[] | null
  notes: Note[] // everything the summary said, and what only --verbose says (topic audio: the recording's own)
}

/** A tracking CSV's epoch seen while recording, as the sync record keeps it. */
export type WatchedCsv = { file: string } & Omit<WatchedEpoch, 'source'>

export function parseWatchedCsvs(raw: unknown): WatchedCsv[] | null {
  if (!Array.isArray(raw)) return null
  const fine = (x: Record<string, unknown>) =>
    typeof x?.file === 'string' && ['tInitEpochS', 'uncertaintyS', 'rowPeriodS'].every((k) => typeof x[k] === 'number')
  return raw.filter(fine).map((x) => ({
    file: x.file,
    tInitEpochS: x.tInitEpochS,
    uncertaintyS: x.uncertaintyS,
    rowPeriodS: x.rowPeriodS,
  }))
}

/** The audio fields of a record: one device's. */
export const AUDIO_KEYS = [
  'audioFile',
  'audioFormat',
  'audioDevice',
  'audioStartEpochS',
  'audioStartSource',
  'audioStartStampEpochS',
  'audioStartEnvelopeEpochS',
  'audioStartUncertaintyS',
  'audioStartCheck',
  'audioDeliveryLatencyS',
  'audioSampleRate',
  'audioChannels',
  'audioDurationS',
  'audioWallSpanS',
  'audioStartDoubtful',
  'audioClockHz',
  'audioClockPpm',
  'audioClockUncertaintyPpm',
  'audioClockRatio',
] as const satisfies readonly (keyof SyncRecord)[]

/** One device's part of a recording with several: its audio fields, and why it failed if it did. */
type AudioFields = Pick<SyncRecord, (typeof AUDIO_KEYS)[number]>
export type AudioPart = AudioFields & { audioFailed: string | null }

export function audioFieldsOf(from: AudioFields): AudioFields {
  return Object.fromEntries(AUDIO_KEYS.map((key) => [key, from[key]])) as AudioFields
}

/** What a record says of one video: --all-videos keeps one per recording. */
export type VideoSync = { [K in keyof typeof NO_VIDEO]: SyncRecord[K] }

const NO_VIDEO = {
  videoFile: null,
  videoStartEpochS: null,
  videoStartSource: null,
  videoStartUncertaintyS: null,
  videoFinalized: null,
  videoFrames: null,
  videoNominalFps: null,
  videoDurationS: null,
  videoRealSpanS: null,
  videoSpanSource: null,
  timesyncFile: null,
  driftPpm: null,
  driftAtEndMs: null,
  itsscale: null,
  driftReason: null,
  trackingCsvFile: null,
  trackingCsvEpochSource: null,
  trackingCsvEpochS: null,
  trackingCsvNote: null,
  cameraFps: null,
  bufferedFrames: null,
  firstReadLateS: null,
  offLineFrames: null,
  anchorWarnings: [],
  events: null,
  offsetS: null,
  offsetBoundsS: null,
  cameraLatencyS: null,
  cameraLatencyUncertaintyS: null,
  cameraLatencySource: null,
  cameraLatencyMeasured: null,
  delaySamples: null,
  trimSamples: null,
  muxedFile: null,
  audioPlacements: null,
  silenceBeforeS: null,
  silenceAfterS: null,
  muxArgs: null,
  muxCommand: null,
} satisfies Partial<SyncRecord>

/** A recording's record before anything is known of its video. */
export function newSyncRecord(
  a: Pick<
    SyncRecord,
    'tool' | 'feedDir' | 'audioFile' | 'audioFormat' | 'audioDevice' | 'audioSampleRate' | 'audioChannels' | 'timing'
  >,
): SyncRecord {
  return {
    ...a,
    state: 'recording',
    audioStartEpochS: null,
    audioStartSource: null,
    audioStartStampEpochS: null,
    audioStartEnvelopeEpochS: null,
    audioStartUncertaintyS: null,
    audioStartCheck: null,
    audioDeliveryLatencyS: null,
    audioDurationS: null,
    audioWallSpanS: null,
    audioStartDoubtful: null,
    audioClockHz: null,
    audioClockPpm: null,
    audioClockUncertaintyPpm: null,
    audioClockRatio: 1,
    audios: null,
    trackingCsvWatched: null,
    settings: null,
    ...NO_VIDEO,
    videos: null,
    notes: [],
  }
}

const NOTE_KINDS: readonly NoteKind[] = ['ok', 'plain', 'warning', 'error', 'detail', 'advice']

/** A sync file's notes, those that are notes. */
export function parseNotes(raw: unknown): Note[] {
  if (!Array.isArray(raw)) return []
  return raw
    .filter((n) => NOTE_KINDS.includes(n?.kind) && typeof n.text === 'string')
    .map((n) => ({
      kind: n.kind,
      text: n.text,
      ...(typeof n.short === 'string' ? { short: n.short } : {}),
      ...(typeof n.key === 'string' ? { key: n.key } : {}),
      ...(typeof n.changes === 'boolean' ? { changes: n.changes } : {}),
      ...(n.topic === 'audio' || n.topic === 'video' ? { topic: n.topic } : {}),
    }))
}

const EPOCH_RANGE_S = [946684800, 7258118400] // 2000 to 2200: a time outside is no recording's
const SYNC_RANGES: Record<string, [number, number, boolean]> = {
  audioSampleRate: [1000, 1e6, true], // [lowest, highest, whole number]
  audioChannels: [1, 64, true],
  audioStartEpochS: [...EPOCH_RANGE_S, false] as [number, number, boolean],
  clockOffsetS: [-86400, 86400, false],
  audioStartStampEpochS: [...EPOCH_RANGE_S, false] as [number, number, boolean],
  audioStartEnvelopeEpochS: [...EPOCH_RANGE_S, false] as [number, number, boolean],
  audioStartUncertaintyS: [0, 3600, false],
  audioDeliveryLatencyS: [-60, 60, false], // − where the stamp came after the samples (stamp-late)
  audioDurationS: [0, 1e7, false], // 115 days
  audioWallSpanS: [0, 1e7, false],
  audioClockHz: [1000, 1e6, false],
  audioClockRatio: [0.99, 1.01, false], // 1 % off: fifty times the worst USB card's clock; the mux applies it
}
// What mux reads back of a video (the top level's, each of videos[]'s): the stop's offset is a witness.
const VIDEO_RANGES: Record<string, [number, number, boolean]> = {
  offsetS: [-1e7, 1e7, false],
  videoStartEpochS: [...EPOCH_RANGE_S, false] as [number, number, boolean],
  videoStartUncertaintyS: [0, 3600, false],
  videoFrames: [0, 1e10, true],
  videoNominalFps: [0.1, 1000, false],
  cameraFps: [0.1, 1000, false],
  videoDurationS: [0, 1e7, false],
  videoRealSpanS: [0, 1e7, false],
  cameraLatencyS: [-10, 10, false],
  silenceBeforeS: [0, 1e7, false],
  silenceAfterS: [0, 1e7, false],
}
// The timing settings kept with the record, which mux applies again.
const TIMING_RANGES: Record<string, [number, number, boolean]> = {
  clockOffsetS: SYNC_RANGES.clockOffsetS,
  videoStartEpochS: VIDEO_RANGES.videoStartEpochS,
  cameraLatencyS: [0, 10, false], // --camera-latency's own range
}

/** The first number in `raw` outside its range in `ranges`, named with `prefix`; or null. */
function rangeProblem(raw: unknown, ranges: Record<string, [number, number, boolean]>, prefix: string) {
  if (raw == null || typeof raw !== 'object') return null
  for (const [key, [low, high, whole]] of Object.entries(ranges)) {
    const value = (raw as Record<string, unknown>)[key]
    if (value == null) continue
    const ok = typeof value === 'number' && Number.isFinite(value) && value >= low && value <= high
    if (!ok || (whole && !Number.isInteger(value)))
      return `its ${prefix}${key} is ${JSON.stringify(value)}, outside ${low}…${high}${whole ? ', whole' : ''}`
  }
  return null
}

/** The first number of a sync file that no recording could have written (audio, timing, videos), named; or null. */
export function syncRangeProblem(raw: Record<string, unknown>): string | null {
  const list = (value: unknown) => (Array.isArray(value) ? value : [])
  return (
    rangeProblem(raw, SYNC_RANGES, '') ??
    rangeProblem(raw, VIDEO_RANGES, '') ??
    rangeProblem(raw.timing, TIMING_RANGES, 'timing.') ??
    list(raw.audios).reduce<string | null>(
      (found, a, k) => found ?? rangeProblem(a, SYNC_RANGES, `audios[${k}].`),
      null,
    ) ??
    list(raw.videos).reduce<string | null>(
      (found, v, k) => found ?? rangeProblem(v, VIDEO_RANGES, `videos[${k}].`),
      null,
    )
  )
}

/**
 * A sync file's text as a record; files from before the timing settings were stored get the
 * defaults they were made with. Throws a one-line Error naming what is missing.
 */
export function parseSyncRecord(text: string): SyncRecord {
  let raw: Record<string, unknown>
  try {
    raw = JSON.parse(text)
  } catch {
    throw new Error('it is not JSON')
  }
  if (raw == null || typeof raw !== 'object' || Array.isArray(raw)) throw new Error('it is not a JSON object')
  const outOfRange = syncRangeProblem(raw)
  if (outOfRange) throw new Error(outOfRange)
  const number = (key: string) => (typeof raw[key] === 'number' ? (raw[key] as number) : null)
  if (typeof raw.audioFile !== 'string') throw new Error('it names no audioFile')
  if (number('audioSampleRate') == null) throw new Error('it has no audioSampleRate')
  const stored = (raw.timing ?? {}) as Partial<TimingSettings>
  const timing: TimingSettings = {
    timesyncFile: typeof stored.timesyncFile === 'string' ? stored.timesyncFile : null,
    videoStartEpochS: typeof stored.videoStartEpochS === 'number' ? stored.videoStartEpochS : null,
    clockOffsetS: typeof stored.clockOffsetS === 'number' ? stored.clockOffsetS : (number('clockOffsetS') ?? 0),
    // A 0 stored before the latency could be kept (no "calibration" beside it) was the default, never a
    // measurement; since then a number stored is a --camera-latency given, 0 too.
    cameraLatencyS:
      typeof stored.cameraLatencyS === 'number' && (stored.cameraLatencyS || typeof stored.calibration === 'boolean')
        ? stored.cameraLatencyS
        : null,
    calibration: stored.calibration !== false,
    driftFix: typeof stored.driftFix === 'boolean' ? stored.driftFix : true,
    events: stored.events === true,
    allVideos: stored.allVideos === true,
  }
  return {
    ...newSyncRecord({
      tool: String(raw.tool ?? 'record-audio'),
      feedDir: typeof raw.feedDir === 'string' ? raw.feedDir : null,
      audioFile: raw.audioFile,
      audioFormat: (FORMATS as readonly unknown[]).includes(raw.audioFormat) ? (raw.audioFormat as Format) : null,
      audioDevice: typeof raw.audioDevice === 'string' ? raw.audioDevice : null,
      audioSampleRate: number('audioSampleRate') as number,
      audioChannels: number('audioChannels') ?? 1,
      timing,
    }),
    state: raw.state === 'stopped' || raw.state === 'synced' ? raw.state : 'recording',
    settings: raw.settings && typeof raw.settings === 'object' ? (raw.settings as RecordedSettings) : null,
    audioStartEpochS: number('audioStartEpochS'),
    audioStartSource: (raw.audioStartSource as AudioStart['source']) ?? null,
    audioStartStampEpochS: number('audioStartStampEpochS'),
    audioStartEnvelopeEpochS: number('audioStartEnvelopeEpochS'),
    audioStartUncertaintyS: number('audioStartUncertaintyS'),
    audioStartCheck: START_CHECK_KINDS.includes(raw.audioStartCheck as StartCheckKind)
      ? (raw.audioStartCheck as StartCheckKind)
      : null,
    audioDeliveryLatencyS: number('audioDeliveryLatencyS'),
    audioDurationS: number('audioDurationS'),
    audioWallSpanS: number('audioWallSpanS'),
    audioStartDoubtful: typeof raw.audioStartDoubtful === 'boolean' ? raw.audioStartDoubtful : null,
    audioClockHz: number('audioClockHz'),
    audioClockPpm: number('audioClockPpm'),
    audioClockUncertaintyPpm: number('audioClockUncertaintyPpm'),
    audioClockRatio: number('audioClockRatio') ?? 1,
    audios: Array.isArray(raw.audios)
      ? raw.audios.map((part: Record<string, unknown>) => {
          const back = parseSyncRecord(JSON.stringify({ ...part, audios: null }))
          return { ...audioFieldsOf(back), audioFailed: typeof part.audioFailed === 'string' ? part.audioFailed : null }
        })
      : null,
    trackingCsvWatched: parseWatchedCsvs(raw.trackingCsvWatched),
    // The recording's own videos: `mux` later muxes these, not whatever is newest in the feed now.
    videoFile: typeof raw.videoFile === 'string' ? raw.videoFile : null,
    videos: Array.isArray(raw.videos)
      ? raw.videos
          .filter((v: Record<string, unknown>) => typeof v?.videoFile === 'string')
          .map((v: Record<string, unknown>) => ({ ...NO_VIDEO, videoFile: v.videoFile as string }))
      : null,
    notes: parseNotes(raw.notes),
  }
}

// ── The build ────────────────────────────────────────────────────────────────────────────────
// npx and a global install run dist/record-audio.mjs: Node strips no types under node_modules. The build is
// this file with its types stripped (line for line) and the source's hash stamped in, so that a run notices an
// edit the build has not seen and runs the edited source instead, or refuses: never the old settings.

/** The sha256 of record-audio.mts that this build was made from; '' in the source itself (writeBuild sets it). */
const BUILT_FROM_SHA256 = ''

/** The oldest Node that runs this file's TypeScript itself: an edited settings block needs nothing built. */
export const OLDEST_NODE = '22.18.0'

export function nodeIsTooOld(version: string, oldest = OLDEST_NODE): boolean {
  const [have, need] = [version, oldest].map((v) => v.replace(/^v/, '').split('.').map(Number))
  for (let k = 0; k < 3; k++) if (have[k] !== need[k]) return (have[k] ?? 0) < need[k]
  return false
}

export const sha256 = (text: string | Buffer) => createHash('sha256').update(text).digest('hex')

/** The build's text: the stripped source with its hash in BUILT_FROM_SHA256. */
export function stampBuild(strippedJs: string, sourceSha256: string): string {
  const declaration = /^const BUILT_FROM_SHA256 = ''$/m
  if (!declaration.test(strippedJs)) throw new Error('the source has no BUILT_FROM_SHA256 to stamp')
  return strippedJs.replace(declaration, `const BUILT_FROM_SHA256 = '${sourceSha256}'`)
}

export type BuildCheck =
  | { kind: 'run-self' } // the source itself, or a build that matches it (or has no source beside it)
  | { kind: 'run-source'; source: string } // the source was edited after the build: run it instead
  | { kind: 'refuse'; line: string } // edited, and Node cannot run it where it is

/** What a build does about the source beside it (`../record-audio.mts`), given that source's hash. */
export function checkBuild(
  self: string,
  builtFromSha256: string,
  source: string,
  sourceSha256: string | null,
): BuildCheck {
  if (self.endsWith('.mts') || sourceSha256 == null || sourceSha256 === builtFromSha256) return { kind: 'run-self' }
  if (!source.split(/[\\/]/).includes('node_modules')) return { kind: 'run-source', source }
  return {
    kind: 'refuse',
    line:
      `record-audio: ${source} was edited after its build, and Node runs no TypeScript under node_modules:` +
      ' make your own copy to edit with `record-audio init` in your lab folder (nothing was recorded)',
  }
}

// ── The run ──────────────────────────────────────────────────────────────────────────────────

const say = (line: string) => {
  // On a terminal, first clear the live status line that may stand there, and wrap to its width.
  const tty = Boolean(process.stderr.isTTY)
  const lines = tty ? line.split('\n').flatMap((one) => wrapLine(one, process.stderr.columns || null)) : [line]
  try {
    process.stderr.write(`${(tty ? '\r\x1b[K' : '') + lines.join('\n')}\n`)
  } catch {
    /* the terminal is gone (SIGHUP): the files still get written */
  }
}

/** Says a line and gives back the exit code that goes with it. */
/**
 * The summary as it is said: each stage's notes rendered at once (a keyed note once per run), the
 * advice held for the end; every note kept for the sync file.
 */
class Summary {
  notes: Note[] = []
  private saidKeys: string[] = []
  readonly verbose: boolean
  constructor(verbose: boolean) {
    this.verbose = verbose
  }

  tell(notes: Note[]): void {
    this.notes.push(...notes)
    const now = notes.filter((n) => n.kind !== 'advice')
    for (const line of renderNotes(now, { verbose: this.verbose, saidKeys: this.saidKeys })) say(line)
    this.saidKeys.push(...now.flatMap((n) => (n.key == null ? [] : [n.key])))
  }

  /** The advice, once each, at the end of the run. */
  end(): void {
    const advice = this.notes.filter((n) => n.kind === 'advice')
    for (const line of renderNotes(advice, { verbose: this.verbose })) say(line)
  }
}

const sayThen = (line: string, exitCode: number) => {
  say(line)
  return exitCode
}

/** Writes to stdout (what scripts read) and gives back the exit code. */
const printThen = (text: string, exitCode: number) => {
  process.stdout.write(text)
  return exitCode
}

function packageVersion(): string {
  for (const rel of ['./package.json', '../package.json']) {
    try {
      const pkg = JSON.parse(fs.readFileSync(new URL(rel, import.meta.url), 'utf8'))
      if (pkg.name === 'record-audio') return pkg.version
      if (typeof pkg.recordAudioVersion === 'string') return `${pkg.recordAudioVersion} (a copy made by init)`
    } catch {
      /* try the next place */
    }
  }
  return 'unknown'
}

/**
 * A program's stdout as bytes (or, with onData, handed over chunk by chunk and not kept), no shell;
 * a failure is a ToolError with its last error line. An aborted signal stops the program. (zx's `$`
 * would serve, but its output's buffer() lost the raw PCM here: a decoded click track came back with
 * no clicks in it.)
 */
function stdoutOf(
  program: string,
  args: string[],
  o: { signal?: AbortSignal; onData?: (chunk: Buffer) => void } = {},
): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    if (o.signal?.aborted) return reject(new ToolError(`${path.basename(program)} not started: stopped`, true))
    const child = spawn(program, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    const stop = () => child.kill('SIGTERM')
    o.signal?.addEventListener('abort', stop, { once: true })
    const chunks: Buffer[] = []
    let stderr = ''
    child.stdout.on('data', (chunk: Buffer) => (o.onData ? o.onData(chunk) : chunks.push(chunk)))
    child.stderr.on('data', (chunk: Buffer) => {
      stderr = (stderr + chunk).slice(-4000)
    })
    child.on('error', reject)
    child.on('close', (code, signal) => {
      o.signal?.removeEventListener('abort', stop)
      if (code === 0) resolve(Buffer.concat(chunks))
      else {
        const signalled = signal != null || code === 255 // ffmpeg's exit after SIGINT or SIGTERM
        reject(new ToolError(`${path.basename(program)} failed: ${ffmpegErrorLine(stderr)}`, signalled))
      }
    })
  })
}

/** Every frame's presentation time and mean brightness (frames shrunk to 8×6 grey: a flash fills the view). */
async function frameBrightness(ffmpeg: string, ffprobe: string, file: string, signal?: AbortSignal) {
  const packets = await stdoutOf(
    ffprobe,
    ['-v', 'error', '-select_streams', 'v:0', '-show_entries', 'packet=pts_time', '-of', 'csv=p=0', file],
    { signal },
  )
  const ptsS = packets
    .toString()
    .split('\n')
    .filter(Boolean)
    .map(Number)
    .sort((a, b) => a - b)
  const raw = await stdoutOf(
    ffmpeg,
    [
      ...['-v', 'error', '-i', file, '-map', '0:v:0', '-vf', 'scale=8:6,format=gray', '-fps_mode', 'passthrough'],
      ...['-f', 'rawvideo', '-'],
    ],
    { signal },
  )
  const brightness: number[] = []
  for (let at = 0; at + 48 <= raw.length; at += 48)
    brightness.push(raw.subarray(at, at + 48).reduce((a, b) => a + b) / 48)
  return { ptsS: ptsS.slice(0, brightness.length), brightness }
}

/**
 * The first audio stream's sample peaks, a block of ~0.25 ms each, and when its first block plays.
 * With a span (seconds from the stream's start), only that part is decoded; the samples are never
 * held whole (a WAV past 4 GiB would not fit one Buffer).
 */
async function audioPeaks(
  ffmpeg: string,
  ffprobe: string,
  file: string,
  o: { span?: { startS: number; durationS: number }; signal?: AbortSignal } = {},
) {
  const probe = JSON.parse(
    (
      await stdoutOf(
        ffprobe,
        [
          ...['-v', 'error', '-select_streams', 'a:0', '-show_entries', 'stream=sample_rate,start_time'],
          ...['-of', 'json', file],
        ],
        { signal: o.signal },
      )
    ).toString(),
  ).streams?.[0]
  if (!probe) throw new ToolError(`${file} has no audio stream: check needs a file with sound and picture`)
  const rate = Number(probe.sample_rate)
  const samplesPerBlock = Math.max(1, Math.round(rate / 4000))
  let peaks = new Int16Array(1 << 16)
  let seen = 0 // samples so far
  let carry: Buffer | null = null
  const onData = (chunk: Buffer) => {
    const bytes: Buffer = carry ? Buffer.concat([carry, chunk]) : chunk
    const whole = bytes.length & ~1
    carry = whole < bytes.length ? Buffer.from(bytes.subarray(whole)) : null
    const samples = new Int16Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + whole))
    const blocks = Math.ceil((seen + samples.length) / samplesPerBlock)
    if (blocks > peaks.length) {
      const grown = new Int16Array(Math.max(blocks, peaks.length * 2))
      grown.set(peaks)
      peaks = grown
    }
    for (let i = 0; i < samples.length; i++, seen++) {
      const b = Math.floor(seen / samplesPerBlock)
      const v = Math.min(Math.abs(samples[i]), 32767)
      if (v > peaks[b]) peaks[b] = v
    }
  }
  const seek = o.span ? ['-ss', o.span.startS.toFixed(6), '-t', o.span.durationS.toFixed(6)] : []
  await stdoutOf(ffmpeg, ['-v', 'error', ...seek, '-i', file, '-map', '0:a:0', '-ac', '1', '-f', 's16le', '-'], {
    signal: o.signal,
    onData,
  })
  return {
    peaks: peaks.subarray(0, Math.ceil(seen / samplesPerBlock)),
    blockS: samplesPerBlock / rate,
    startS: (Number(probe.start_time) || 0) + (o.span?.startS ?? 0),
  }
}

/**
 * A file's flashes (onsets, exposure assumed to last the frame period) and clicks (onsets), each on
 * its own stream's timeline; the video's end; with a span, only that part of the audio is read.
 */
async function findEvents(
  ffmpeg: string,
  ffprobe: string,
  videoFile: string,
  audioFile: string,
  o: { span?: { startS: number; durationS: number }; signal?: AbortSignal } = {},
) {
  const { ptsS, brightness } = await frameBrightness(ffmpeg, ffprobe, videoFile, o.signal)
  const { peaks, blockS, startS } = await audioPeaks(ffmpeg, ffprobe, audioFile, o)
  const framePeriodS = ptsS.length > 1 ? (ptsS[ptsS.length - 1] - ptsS[0]) / (ptsS.length - 1) : 1 / 30
  const flashesS = flashOnsetsS(brightness, ptsS, framePeriodS)
  const clicksS = onsetBlocks(peaks, blockS).map((b) => startS + b * blockS)
  return { flashesS, clicksS, framePeriodS, endS: (ptsS[ptsS.length - 1] ?? 0) + framePeriodS }
}

const EXPOSURE_ASSUMED =
  "Flashes are timed assuming each frame's exposure lasts its whole period: a shorter one times them up to" +
  ' (period − exposure) late'

/** record-audio check FILE: the sync at the file's own events. Exit 0 with a verdict, 1 without one. */
async function checkFile(c: { file: string; json: boolean; ffmpeg: string }): Promise<number> {
  if (!fs.existsSync(c.file)) throw new ToolError(`${c.file} does not exist: give a file with sound and picture`)
  const { ffmpeg, ffprobe } = await findTools(c.ffmpeg)
  if (!ffprobe) throw new ToolError('ffprobe not found beside ffmpeg or on PATH: install it with ffmpeg')
  const found = await findEvents(ffmpeg, ffprobe, c.file, c.file)
  // The file's own timeline is what is checked: no anchor to break a tie.
  const fit = syncOnEvents({ ...found, anchorDoubtS: null })
  if (c.json) process.stdout.write(`${JSON.stringify({ file: c.file, ...fit })}\n`)
  else {
    for (const p of fit.events)
      say(`  flash ${p.flashS.toFixed(4)} s  click ${p.clickS.toFixed(4)} s  ${(p.residualS * 1000).toFixed(1)} ms`)
    if (fit.candidates.length) say(`  Offsets weighed (click − flash, pairs that agree): ${weighed(fit.candidates)}`)
    say(
      `${fit.consistent ? '✔' : '✖'} ${path.basename(c.file)}: ${describeEventFit(fit)}` +
        ` (${fit.flashes} flashes, ${fit.clicks} clicks found).`,
    )
    if (fit.consistent) for (const note of fit.notes) say(`  ${eventNoteText(note)}.`)
    if (fit.flashes) say(`  ${EXPOSURE_ASSUMED}.`)
  }
  return fit.consistent ? 0 : 1
}

/** ffmpeg and ffprobe as runnable paths; ffprobe from the same folder when ffmpeg was given by path. */
async function findTools(ffmpegSetting: string): Promise<{ ffmpeg: string; ffprobe: string | null }> {
  const ffmpeg = /[\\/]/.test(ffmpegSetting)
    ? fs.existsSync(ffmpegSetting)
      ? path.resolve(ffmpegSetting)
      : null
    : await which(ffmpegSetting, { nothrow: true })
  if (!ffmpeg)
    throw new ToolError(
      `ffmpeg not found (tried ${JSON.stringify(ffmpegSetting)}):` +
        ` install it with ${installHint(process.platform)}, or pass --ffmpeg /path/to/ffmpeg`,
    )
  if (fs.statSync(ffmpeg, { throwIfNoEntry: false })?.isDirectory())
    throw new ToolError(
      `--ffmpeg ${ffmpegSetting} is a folder, not the ffmpeg program: pass the program itself,` +
        ` e.g. --ffmpeg ${path.join(ffmpegSetting, 'ffmpeg')}`,
    )
  const exe = process.platform === 'win32' ? '.exe' : ''
  const sibling = path.join(path.dirname(ffmpeg), `ffprobe${exe}`)
  const ffprobe = fs.existsSync(sibling) ? sibling : await which('ffprobe', { nothrow: true })
  return { ffmpeg, ffprobe }
}

/** A tool that failed; signalled: it ended on a signal, e.g. the terminal's ctrl-c. */
class ToolError extends Error {
  signalled: boolean
  constructor(message: string, signalled = false) {
    super(message)
    this.signalled = signalled
  }
}
class NoOverlap extends ToolError {} // this video only: --all-videos goes on with the others
class NotVideo extends ToolError {} // this file only, the same

interface VideoFacts {
  file: string
  ulidEpochS: number
  finalized: boolean
  frames: number | null
  nominalFps: number | null
  mode: string | null // width × height, nominal fps, codec: what a camera latency is kept for
  mtimeEpochS: number
}

async function videoFacts(file: string, ffprobe: string | null): Promise<VideoFacts> {
  const finalized = isFinalizedMp4(file)
  let frames: number | null = null
  let nominalFps: number | null = null
  let mode: string | null = null
  if (finalized && ffprobe) {
    const entries = 'stream=nb_frames,r_frame_rate,width,height,codec_name'
    const probe = await runHelper(ffprobe, [
      '-v',
      'error',
      '-select_streams',
      'v:0',
      '-show_entries',
      entries,
      '-of',
      'json',
      file,
    ])
    const stream = probe.exitCode === 0 ? JSON.parse(probe.stdout).streams?.[0] : undefined
    if (Number(stream?.nb_frames) > 0) frames = Number(stream.nb_frames)
    nominalFps = parseRate(stream?.r_frame_rate)
    const size = { width: Number(stream?.width) || null, height: Number(stream?.height) || null }
    mode = videoModeOf({ ...size, fps: nominalFps, codec: stream?.codec_name ?? null })
  }
  return {
    file,
    ulidEpochS: ulidTimeMs(path.basename(file)) / 1000,
    finalized,
    frames,
    nominalFps,
    mode,
    mtimeEpochS: fs.statSync(file).mtimeMs / 1000,
  }
}

/** What the timing needs of TracktorLive's timesync file: its first and last times, and how many rows. */
export interface TimesyncSpan {
  firstS: number
  lastS: number
  rows: number
  timesS?: Float64Array // every row: the frame clock's envelope needs them all (21 MB for a day at 30 fps)
}

/** The timesync file's rows; null when there is no file. */
async function readTimesync(file: string): Promise<TimesyncSpan | null> {
  if (!fs.existsSync(file)) return null
  try {
    if (!isRegularFile(file)) throw new Error('not a regular file') // a FIFO would block every stop
    // Loaded only when such a file exists.
    const { asyncBufferFromFile, parquetMetadataAsync, parquetRead } = await import('hyparquet')
    const buffer = await asyncBufferFromFile(file)
    const metadata = await parquetMetadataAsync(buffer)
    const rows = Number(metadata.num_rows)
    if (rows < 2) throw new Error('fewer than two rows')
    const timesS = new Float64Array(rows)
    await parquetRead({
      file: buffer,
      metadata,
      columns: ['timestampUTC'],
      onChunk: (chunk) => {
        for (let i = 0; i < chunk.columnData.length && chunk.rowStart + i < rows; i++)
          timesS[chunk.rowStart + i] = Number(chunk.columnData[i])
      },
    })
    const [firstS, lastS] = [timesS[0], timesS[rows - 1]]
    if (!Number.isFinite(firstS) || !Number.isFinite(lastS) || lastS <= firstS)
      throw new Error('no increasing timestampUTC column')
    return { firstS, lastS, rows, timesS }
  } catch (error) {
    throw new ToolError(`${file} cannot be read (${(error as Error).message})`)
  }
}

interface VideoSearch {
  videoFile: string | null
  feedDir: string | null
  searchRoot: string
}

/** The names of the files in a folder that are TracktorLive recordings (a folder named like one is not). */
function recordingFiles(dir: string): string[] {
  try {
    return fs
      .readdirSync(dir, { withFileTypes: true })
      .filter((entry) => entry.isFile() && RECORDING_NAME.test(entry.name))
      .map((entry) => entry.name)
  } catch {
    return []
  }
}

function subfolders(root: string): string[] {
  return fs
    .readdirSync(root, { withFileTypes: true })
    .filter((entry) => entry.isDirectory())
    .map((entry) => path.join(root, entry.name))
}

/** Each recording's span on the wall clock, roughly: its ULID to its mtime (to now while it is written). */
function recordingSpans(dirs: string[]): Omit<Candidate, 'overlapS'>[] {
  return dirs.flatMap((dir) =>
    recordingFiles(dir).map((name) => {
      const file = path.join(dir, name)
      // Still being written (no moov yet): it runs until now, whatever its mtime says.
      const endEpochS = isFinalizedMp4(file) ? fs.statSync(file).mtimeMs / 1000 : Date.now() / 1000
      return { file, startEpochS: ulidTimeMs(name) / 1000, endEpochS }
    }),
  )
}

const audioEndEpochS = (audio: { startEpochS: number; durationS: number | null }) =>
  audio.startEpochS + (audio.durationS ?? 0)

/**
 * The videos to sync to. --all-videos: each recording in the feed folder (any subfolder without one)
 * that overlaps the audio, oldest first. Else one: --video; the newest recording in the feed folder;
 * with no feed id, the recording in any subfolder of the search root whose span (ULID → mtime)
 * overlaps the audio most. Says what it picked and from what; [] when none.
 */
function chooseVideos(v: VideoSearch, audio: AudioFacts, all: boolean, summary: Summary): string[] {
  if (v.videoFile && !all) return [v.videoFile]
  if (v.feedDir && !all) {
    const newest = newestRecording(recordingFiles(v.feedDir))
    return newest ? [path.join(v.feedDir, newest)] : []
  }
  const spans = recordingSpans(v.feedDir ? [v.feedDir] : subfolders(v.searchRoot))
  const ranked = rankByOverlap(spans, audio.startEpochS, audioEndEpochS(audio))
  const overlapping = ranked.filter((c) => c.overlapS > 0)
  const cwd = process.cwd()
  const where = v.feedDir
    ? `${shownPath(v.feedDir, cwd)}${path.sep}`
    : `the subfolders of ${shownPath(v.searchRoot, cwd)}`
  if (!overlapping.length) {
    const kept = audio.others.length ? 'the WAVs are' : 'the WAV is'
    const looked = ranked.length ? ` (${ranked.length} looked at)` : ''
    summary.tell([
      {
        kind: 'warning',
        text: `⚠ No TracktorLive recording (<ULID>.mp4) in ${where} overlaps the audio in time${looked}: ${kept} kept.`,
      },
    ])
    return []
  }
  if (all) {
    const n = overlapping.length
    const overlap = n === 1 ? ' overlaps' : 's overlap'
    const text = `  ${n} TracktorLive recording${overlap} the audio in ${where} (--all-videos).`
    summary.tell([{ kind: 'detail', text }])
    return overlapping.sort((a, b) => a.startEpochS - b.startEpochS).map((c) => c.file)
  }
  const chosen = overlapping[0]
  const neighbours = recordingFiles(path.dirname(chosen.file))
  const covers =
    ` which covers ${chosen.overlapS.toFixed(1)} s of the audio` +
    (overlapping.length > 1 ? `, the most of ${overlapping.length} overlapping recordings:` : '.')
  const notes: Note[] = [
    {
      kind: 'plain',
      text: `  No feed id: picked ${path.relative(v.searchRoot, chosen.file)},${covers}`,
      short: `  No feed id: picked ${shortVideoName(chosen.file, v.searchRoot, neighbours)},${covers}`,
    },
  ]
  if (overlapping.length > 1)
    for (const c of overlapping)
      notes.push({
        kind: 'plain',
        text:
          `    ${c === chosen ? '→' : ' '} ${path.relative(v.searchRoot, c.file)}  ${c.overlapS.toFixed(1)} s` +
          '  (give it with --video to choose)',
      })
  summary.tell(notes)
  return [chosen.file]
}

function checkVideoFile(videoFile: string | null): void {
  if (videoFile == null) return
  if (!fs.existsSync(videoFile))
    throw new UsageError(`--video ${videoFile} does not exist: give the path of the TracktorLive recording`)
  if (!isRegularFile(videoFile))
    throw new UsageError(
      `--video ${videoFile} is not a regular file (a FIFO, a device or a folder): give the mp4 itself`,
    )
  if (!RECORDING_NAME.test(path.basename(videoFile)))
    throw new UsageError(
      `--video ${videoFile} is not named <ULID>.mp4, so its start time is unknown: give TracktorLive's original file`,
    )
}

function checkTimesyncFile(timesyncFile: string | null): void {
  if (timesyncFile != null && !fs.existsSync(timesyncFile))
    throw new UsageError(
      `--timesync ${timesyncFile} does not exist: give the path of <feed_id>-timesyncUTC.parquet, or leave it out`,
    )
  if (timesyncFile != null && !isRegularFile(timesyncFile))
    throw new UsageError(
      `--timesync ${timesyncFile} is not a regular file: give the parquet file itself, or leave it out`,
    )
}

function checkMuxedFile(muxedFile: string | null): void {
  if (muxedFile != null && fs.existsSync(muxedFile))
    throw new UsageError(`${muxedFile} exists and is never overwritten: choose another --muxed-out`)
}
/** A recording's files: `<stem>.wav` (`<stem>-1.wav`, `<stem>-2.wav` … for several devices), `<stem>-sync.json`. */
export function recordingNames(stem: string, devices: number): { audioFiles: string[]; syncFile: string } {
  const audioFiles = devices === 1 ? [`${stem}.wav`] : Array.from({ length: devices }, (_, k) => `${stem}-${k + 1}.wav`)
  return { audioFiles, syncFile: syncFileFor(`${stem}.wav`) }
}

/**
 * The WAV and sync file names, the sync file created at once (`wx`) with what is known before the
 * first sample: two runs started in the same second get different names, and a kill at any
 * moment from here on leaves a record of the recording. Refuses, before anything runs, what
 * would fail later.
 */
function reserveNames(
  s: Settings,
  first: (audioFiles: string[]) => SyncRecord,
): { audioFiles: string[]; syncFile: string } {
  checkVideoFile(s.videoFile)
  checkMuxedFile(s.muxedFile)
  checkTimesyncFile(s.timesyncFile)
  for (const file of [s.audioFile, s.syncFile].filter((f): f is string => f != null))
    if (!fs.existsSync(path.dirname(path.resolve(file))))
      throw new UsageError(
        `folder ${path.dirname(file)} does not exist: create it, or write ${path.basename(file)} elsewhere`,
      )
  const devices = s.inputs.length
  const named = (stem: string) => {
    const names = recordingNames(stem, devices)
    return { ...names, syncFile: s.syncFile ?? names.syncFile }
  }
  if (s.audioFile != null) {
    const taken = named(s.audioFile.replace(/\.wav$/i, '')).audioFiles.find((f) => fs.existsSync(f))
    if (taken) throw new UsageError(`${taken} exists and is never overwritten: choose another --out, or move it away`)
  }
  const defaultStem = s.feedId != null ? `${s.feedId}-audio` : `audio-${fileTimestamp(new Date())}`
  const stem = s.audioFile?.replace(/\.wav$/i, '') ?? defaultStem
  const taken = new Set<string>()
  const free = (candidate: string) => {
    const names = recordingNames(candidate, devices)
    return !taken.has(candidate) && ![...names.audioFiles, names.syncFile].some((f) => fs.existsSync(f))
  }
  for (;;) {
    const stemOf = (wav: string) => wav.slice(0, -'.wav'.length)
    const candidate = s.audioFile == null ? stemOf(freeName(`${stem}.wav`, (f) => !free(stemOf(f)))) : stem
    const { audioFiles, syncFile } = named(candidate)
    const same = audioFiles.find((wav) => path.resolve(wav) === path.resolve(syncFile))
    if (same)
      throw new UsageError(
        `--sync-out ${syncFile} is the WAV's own name: give the sync file another name (e.g. ${syncFileFor(same)})`,
      )
    try {
      fs.writeFileSync(syncFile, `${JSON.stringify(first(audioFiles), null, 2)}\n`, { flag: 'wx' })
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code
      if (code === 'EEXIST' && s.syncFile == null && s.audioFile == null) {
        taken.add(candidate) // another run took this name a moment ago
        continue
      }
      if (code === 'EEXIST')
        throw new UsageError(`${syncFile} exists and is never overwritten: choose another --sync-out, or move it away`)
      throw new UsageError(`cannot create ${syncFile} (${code}): record into a folder you can write to`)
    }
    let clash: string | null
    try {
      clash = reserveAudioFiles(audioFiles)
    } catch (error) {
      fs.rmSync(syncFile, { force: true }) // this run's own, just made: no recording will name it
      throw error
    }
    if (clash) {
      fs.rmSync(syncFile, { force: true }) // this run's own, just made
      if (s.audioFile == null && s.syncFile == null) {
        taken.add(candidate) // another run took a WAV of this name a moment ago
        continue
      }
      throw new UsageError(`${clash} exists and is never overwritten: choose another --out, or move it away`)
    }
    if (s.audioFile == null && candidate !== stem) sayTaken(takenFiles(stem, candidate, devices), audioFiles)
    return { audioFiles, syncFile }
  }
}

/** Every file of the names skipped before `candidate` (`stem`, `stem-2`, …) that exists: all are kept. */
function takenFiles(stem: string, candidate: string, devices: number): string[] {
  const taken: string[] = []
  for (let n = 1; ; n++) {
    const skipped = n === 1 ? stem : `${stem}-${n}`
    if (skipped === candidate || n > 10000) return taken
    const names = recordingNames(skipped, devices)
    taken.push(...[...names.audioFiles, names.syncFile].filter((f) => fs.existsSync(f)))
  }
}

/** The renaming said: every taken file named, and a repair for each earlier WAV whose header was never finished. */
function sayTaken(taken: string[], audioFiles: string[]): void {
  const exist = taken.length === 1 ? 'exists (an earlier recording, kept)' : 'exist (earlier recordings, kept)'
  say(`  ${taken.join(', ') || 'Those names'} ${exist}: recording to ${audioFiles.join(', ')} instead.`)
  for (const wav of taken.filter((f) => f.endsWith('.wav') && readWavInfo(f)?.finalized === false))
    say(`⚠ ${wav}'s header was never finalized: record-audio repair ${quotePosix(wav)}`)
}

/**
 * Each WAV created empty and exclusively (O_EXCL) before ffmpeg opens it: of two runs given the same
 * name at the same moment, one gets it and the other is told, never both writing one file. The one
 * already taken, those made here removed; or null.
 */
function reserveAudioFiles(audioFiles: string[]): string | null {
  const made: string[] = []
  for (const file of audioFiles) {
    try {
      fs.closeSync(fs.openSync(file, 'wx'))
      made.push(file)
    } catch (error) {
      for (const own of made) if (fileBytes(own) === 0) fs.rmSync(own, { force: true })
      const code = (error as NodeJS.ErrnoException).code
      if (code === 'EEXIST') return file
      throw new UsageError(`cannot create ${file} (${code}): record into a folder you can write to`)
    }
  }
  return null
}

/**
 * Writes the record over its own earlier version through a temporary file and a rename, so that a
 * full disk leaves the earlier version whole. false: not written.
 */
function saveSync(file: string, record: SyncRecord): boolean {
  const temporary = `${file}.partial-${process.pid}`
  try {
    fs.writeFileSync(temporary, `${JSON.stringify(record, null, 2)}\n`, { flag: 'wx' })
    fs.renameSync(temporary, file)
    return true
  } catch {
    fs.rmSync(temporary, { force: true })
    return false
  }
}

/**
 * The run's one listener for stop signals, from before the capture to the last line: each stage
 * says what a request means to it (stop the capture, stop waiting, abort the mux), so no signal
 * ever falls through to Node's default, which would end the run with a stack of work undone.
 */
type StopView = Pick<StopRequests, 'count' | 'firstEpochS' | 'onRequest'>

class StopRequests {
  count = 0
  firstEpochS: number | null = null
  #lastMs = Number.NEGATIVE_INFINITY
  lastSignal: NodeJS.Signals | null = null // what the last request was, to say so
  #handler: () => void = () => {}
  readonly #listener = (signal?: NodeJS.Signals) => {
    const nowMs = Date.now()
    if (!isNewRequest(this.#lastMs, nowMs)) return
    this.#lastMs = nowMs
    this.lastSignal = signal ?? null
    this.count++
    this.firstEpochS ??= nowMs / 1000
    this.#handler()
  }

  constructor() {
    for (const signal of STOP_SIGNALS) process.on(signal, this.#listener)
  }

  /** What the next requests do, until another stage says otherwise. */
  onRequest(handler: () => void): void {
    this.#handler = handler
  }

  /** One view per capture (a device each): every request goes to all of them, after `first`. */
  fanOut(n: number, first: () => void): StopView[] {
    const handlers = Array.from({ length: n }, () => () => {})
    this.onRequest(() => {
      first()
      for (const handler of handlers) handler()
    })
    const requests = this
    return handlers.map((_, k) => ({
      get count() {
        return requests.count
      },
      get firstEpochS() {
        return requests.firstEpochS
      },
      onRequest(handler: () => void) {
        handlers[k] = handler
      },
    }))
  }

  dispose(): void {
    for (const signal of STOP_SIGNALS) process.off(signal, this.#listener)
  }
}

/** Bash reads neither its rc files nor $BASH_ENV for these; see spawnWithoutStartupFiles. */
const STARTUP_FILE_VARIABLES = ['BASH_ENV', 'ENV']

/**
 * zx runs each command through bash, and bash reads ~/.bashrc when its stdin is a socket (Node's
 * pipes are; the rule is meant for rsh), and $BASH_ENV always: a conda or pyenv init would delay
 * the first sample by seconds and run inside every command. So bash gets --norc --noprofile.
 */
export function spawnWithoutStartupFiles(
  command: string,
  args: readonly string[],
  options: SpawnOptions,
): ChildProcess {
  const env = { ...(options.env ?? process.env) }
  for (const name of STARTUP_FILE_VARIABLES) delete env[name]
  const shell = options.shell
  if (typeof shell === 'string' && /(^|[\\/])bash(\.exe)?$/i.test(shell))
    return spawn(shell, ['--norc', '--noprofile', '-c', [command, ...args].join(' ')], {
      ...options,
      shell: false,
      env,
    })
  return spawn(command, args, { ...options, env })
}

interface Followed {
  offset: number
  partial: string
  bounds: number[] // look time − the newest row's time, one per look that found new rows
  gaps: number[] // the newest row's time − the one before: the rows' period
}

interface CsvWatch {
  look: () => void
  epochs: () => Map<string, WatchedEpoch>
}

/**
 * While recording, at each live-status tick: the rows the feed's tracking CSVs gained since the
 * last look. The newest row of each look was written before it, so look time − its time bounds
 * the server's t_init from above; the lowest bound over the recording is within a millisecond or
 * so of it (see CsvEpoch). Only files minted around this recording are followed. Every read is
 * asynchronous, one look at a time: a folder on a hung mount skips looks, never holds a stop.
 */
function watchTrackingCsvs(feedDir: string | null): CsvWatch {
  const followed = new Map<string, Followed>()
  const sinceMs = Date.now() - CSV_BEFORE_VIDEO_S * 1000
  let busy = false
  const readNew = async (file: string, state: Followed) => {
    if (!(await fs.promises.stat(file)).isFile()) return // a FIFO or a device named like a CSV: never opened
    const handle = await fs.promises.open(file, fs.constants.O_RDONLY | (fs.constants.O_NONBLOCK ?? 0))
    try {
      const stat = await handle.stat()
      if (!stat.isFile()) return // swapped since the stat
      // Taken after the size: every byte counted below was on disk before this time.
      const lookedS = Date.now() / 1000
      if (stat.size <= state.offset) return
      // Bounded: the rest waits for the next look (its rows' bounds are then looser, still bounds).
      const chunk = Buffer.alloc(Math.min(stat.size - state.offset, CSV_LOOK_MAX_BYTES))
      state.offset += (await handle.read(chunk, 0, chunk.length, state.offset)).bytesRead
      const lines = (state.partial + chunk.toString('utf8')).split('\n')
      state.partial = lines.pop() ?? ''
      const rows = lines.filter((line) => /^[\d.]/.test(line)).map((line) => Number(line.split(',')[0]))
      const timeS = rows.at(-1)
      if (timeS === undefined || !Number.isFinite(timeS)) return
      state.bounds.push(lookedS - timeS)
      if (rows.length > 1) state.gaps.push(timeS - (rows.at(-2) as number))
    } finally {
      await handle.close().catch(() => {})
    }
  }
  const once = async (dir: string) => {
    const names = (await someEntries(dir, FEED_MAX_ENTRIES))
      .map((entry) => entry.name)
      .filter((n) => TRACKING_CSV_NAME.test(n) && ulidTimeMs(n) >= sinceMs)
    for (const name of names) {
      const file = path.join(dir, name)
      const state = followed.get(file) ?? { offset: 0, partial: '', bounds: [], gaps: [] }
      followed.set(file, state)
      await readNew(file, state).catch(() => {}) // gone or unreadable: its mtime is used instead
    }
  }
  const look = () => {
    if (!feedDir || busy) return
    busy = true
    once(feedDir)
      .catch(() => {}) // no folder (yet): nothing to follow
      .finally(() => {
        busy = false
      })
  }
  const epochs = () => {
    const found = new Map<string, WatchedEpoch>()
    for (const [file, { bounds, gaps }] of followed) {
      if (bounds.length < 3 || !gaps.length) continue
      // Each bound lies up to a row's period above the truth, evenly: the lowest of n, period / (n + 1).
      const periodS = [...gaps].sort((a, b) => a - b)[Math.floor(gaps.length / 2)]
      const uncertaintyS = Math.max(periodS / (bounds.length + 1), 0.001)
      found.set(file, { tInitEpochS: Math.min(...bounds), source: 'watched', uncertaintyS, rowPeriodS: periodS })
    }
    return found
  }
  return { look, epochs }
}

const FEED_LOOK_MS = 1000 // the feed watch: a few stats a second's worth, on its own wake-up
const FEED_RECENT_MS = 10000 // a recording minted this soon before the audio's start is this trial's
const FEED_WRITTEN_MS = 3000 // a recording written this recently is being recorded now
const FEED_MAX_FOLDERS = 64 // subfolders of the search root followed, at most
const FEED_MAX_ENTRIES = 4096 // entries read from one folder per listing, at most

/** A folder's newest TracktorLive recording and its size at the last look, for the feed watch. */
interface FolderSeen {
  mtimeMs: number | null
  newest: string | null
  bytes: number | null
  growingSinceMs: number | null
}

/** Up to `max` entries of a folder, read without blocking (opendir's reads run off the event loop). */
async function someEntries(dir: string, max: number): Promise<fs.Dirent[]> {
  const found: fs.Dirent[] = []
  const handle = await fs.promises.opendir(dir, { bufferSize: 64 })
  try {
    for (let entry = await handle.read(); entry && found.length < max; entry = await handle.read()) found.push(entry)
  } finally {
    await handle.close().catch(() => {})
  }
  return found
}

/**
 * While recording with a feed id: looks at ./<feed_id>/ and the folders beside it, asynchronously, one look
 * at a time (a slow disk skips looks, never holds the recording), and says feedWarning's line once.
 * A folder's entries are read again only when its mtime moved (a file created); else a stat per folder
 * and one of its newest recording tell whether it grows.
 */
function watchFeed(feedDir: string, root: string, startedMs: number): { look: () => void } {
  const folders = new Map<string, FolderSeen>()
  let rootMtimeMs: number | null = null
  let busy = false
  let done = false
  let lastSaid: string | null = null
  const relist = async (dir: string, seen: FolderSeen) => {
    const mtimeMs = (await fs.promises.stat(dir)).mtimeMs
    if (mtimeMs !== seen.mtimeMs) {
      seen.mtimeMs = mtimeMs
      const names = (await someEntries(dir, FEED_MAX_ENTRIES)).filter((e) => e.isFile()).map((e) => e.name)
      const newest = newestRecording(names) ?? null
      if (newest !== seen.newest) Object.assign(seen, { newest, bytes: null, growingSinceMs: null })
    }
    if (!seen.newest) return
    const file = await fs.promises.stat(path.join(dir, seen.newest))
    // Growing: bigger than at the last look, or written within the last look or two (a writer's buffer
    // reaches the disk in bursts, and the first look has nothing to compare with).
    // Minted around the audio's start: new, whatever its writer has flushed yet (an mp4 muxer holds seconds).
    const minted = ulidTimeMs(seen.newest)
    const grew =
      (seen.bytes != null && file.size > seen.bytes) ||
      Date.now() - file.mtimeMs < FEED_WRITTEN_MS ||
      minted >= startedMs - FEED_RECENT_MS
    if (grew) seen.growingSinceMs ??= Math.max(startedMs, Math.min(Date.now(), file.mtimeMs, minted))
    else seen.growingSinceMs = null
    seen.bytes = file.size
  }
  const once = async () => {
    const rootMtime = (await fs.promises.stat(root)).mtimeMs
    if (rootMtime !== rootMtimeMs) {
      rootMtimeMs = rootMtime
      const dirs = (await someEntries(root, FEED_MAX_ENTRIES)).filter((e) => e.isDirectory()).map((e) => e.name)
      for (const name of dirs.slice(0, FEED_MAX_FOLDERS)) {
        const dir = path.join(root, name)
        if (!folders.has(dir)) folders.set(dir, { mtimeMs: null, newest: null, bytes: null, growingSinceMs: null })
      }
    }
    const feedExists = await fs.promises.stat(feedDir).then(
      (st) => st.isDirectory(),
      () => false,
    )
    if (feedExists && !folders.has(feedDir))
      folders.set(feedDir, { mtimeMs: null, newest: null, bytes: null, growingSinceMs: null })
    await Promise.all([...folders].map(([dir, seen]) => relist(dir, seen).catch(() => folders.delete(dir))))
    const now = Date.now()
    const feed = folders.get(feedDir)
    const newest = feed?.newest
    const elsewhere = [...folders]
      .filter(([dir, seen]) => dir !== feedDir && seen.growingSinceMs != null)
      .map(([dir, seen]) => ({
        dir: shownPath(dir, process.cwd()),
        growingS: (now - (seen.growingSinceMs ?? now)) / 1000,
      }))
    const text = feedWarning({
      feed: shownPath(feedDir, process.cwd()),
      elapsedS: (now - startedMs) / 1000,
      feedExists,
      feedLive: feed?.growingSinceMs != null || (newest != null && ulidTimeMs(newest) >= startedMs - FEED_RECENT_MS),
      elsewhere,
    })
    if (text == null || text === lastSaid) return
    say(text)
    lastSaid = text
    done = elsewhere.length > 0 // a folder named: said all there is; else a later look may name one
  }
  const look = () => {
    if (busy || done) return
    busy = true
    once()
      .catch(() => {}) // an unreadable folder: nothing to say from it
      .finally(() => {
        busy = false
      })
  }
  return { look }
}

/** What the capture left: ffmpeg's exit, its log, the first sample's time, and when the stop came. */
interface Capture {
  exitCode: number | null
  signal: NodeJS.Signals | null
  log: string // the head (with the Input #0 block) and the tail of ffmpeg's stderr
  start: AudioStart | null
  stopRequestedEpochS: number | null
  exitedEpochS: number
  looks: RateObservation[] // the card clock's bursts
  arrivals: RateObservation[] // every look, the WAV's writes watched as they happen included (arrivalEnvelope)
  deliveryS: number // how much later than captured the fastest sample may reach the WAV (PipeWire's cycles)
  serverGone: boolean // ended by itself, and its sound server no longer answers
  envelopeBiasS: number // how late the arrival envelope lies on average (PipeWire: half a graph cycle)
}

/** Whether the sound server a pulse or alsa capture talks to is PipeWire's (pipewire-pulse): `pactl info` says so. */
async function onPipeWire(format: Format): Promise<boolean> {
  if (format !== 'pulse' && format !== 'alsa') return false
  const pactl = await which('pactl', { nothrow: true })
  if (!pactl) return false
  const info = await $({ nothrow: true, quiet: true, timeout: 2000 })`${pactl} info`
  return /on PipeWire/i.test(info.stdout)
}

/** Whether a pulse or alsa capture's sound server answers `pactl info` (bounded); null: no pactl, or not asked. */
async function soundServerAnswers(format: Format): Promise<boolean | null> {
  if (format !== 'pulse' && format !== 'alsa') return null
  const pactl = await which('pactl', { nothrow: true })
  if (!pactl) return null
  const info = await $({ nothrow: true, quiet: true, timeout: 2000 })`${pactl} info`
  return info.exitCode === null ? null : info.exitCode === 0
}

const MAX_DRAIN_MS = 1500 // longer than any sane device latency; a stuck device must not hold the stop
// The sound card's clock is seen in bursts of looks 10 ms apart, one every 20 s and one at the
// stop: a second's burst costs about 15 ms of CPU, so on average well under 0.1 % of a core.
const LOOK_EVERY_MS = 10
// The tracking CSV: each look bounds t_init within a row's period; n looks, period / (n + 1). Five a
// second make a 10 s recording's bound sharper than the mtime's kernel tick, for a readdir and a read.
const CSV_LOOK_MS = 200
const CSV_LOOK_MAX_BYTES = 1 << 20 // read per look: a CSV grown by gigabytes never stalls the stop

/**
 * Calls `f` about every `ms` (uniformly 0.5–1.5 ×), never at a fixed phase: 200 ms is a whole number
 * of frames at 30, 25, 15 fps, so fixed looks at a tracking CSV saw every row equally late and its
 * bound on the server's start never sharpened (frame 0 12–16 ms off, seen in the tests).
 */
function everyJittered(f: () => void, ms: number): { stop: () => void } {
  let timer: NodeJS.Timeout
  const next = () => {
    timer = setTimeout(
      () => {
        f()
        next()
      },
      ms * (0.5 + Math.random()),
    ).unref()
  }
  next()
  return { stop: () => clearTimeout(timer) }
}
const CLOCK_SETTLE_MS = 1000
const CLOCK_BURST_MS = 1000
const CLOCK_BURST_EVERY_MS = 20000
const ARRIVAL_POLL_MS = 2 // where fs.watch fails: a stat this often, for ARRIVAL_WINDOW_S only
const CLOCK_LOOK_MS = 200 // the burst at the stop, while the last samples drain: a few of the device's packets

/**
 * Records until a stop request, then stops ffmpeg once so that it finalizes the WAV: first every
 * sample up to the request is let onto disk (bounded), then `q`. A second request sends one
 * SIGINT (still finalizes), a third SIGKILL. `onStart` gets the first sample's time the moment
 * ffmpeg prints it, however much it logs later.
 */
async function capture(
  format: Format,
  input: AudioInput,
  ffmpeg: string,
  audioFile: string,
  stops: StopView,
  onStart: (start: AudioStart) => void,
): Promise<Capture> {
  const s = { format, ...input }
  const pipewire = onPipeWire(format).catch(() => false)
  const serverAtStart = soundServerAnswers(format).catch(() => null)
  const run = await startFfmpeg(ffmpeg, captureArgs(s, path.resolve(audioFile)))
  const log = readFfmpegLog(run.child, s, onStart)
  let escalation: NodeJS.Timeout | undefined
  const frameBytes = s.channels * 2
  const growth = watchGrowth(audioFile, frameBytes, () => stops.count === 0)
  const startChecked = () => {
    const checked = log.start ? checkAudioStart(log.start, arrivalEnvelope(growth.arrivals, s.sampleRate)) : null
    return checked?.start ?? log.start
  }
  // The record gets the checked start once the window is over: a kill after it keeps the right one.
  growth.run(() => {
    const checked = startChecked()
    if (checked && checked !== log.start) onStart(checked)
  })
  // Samples reach the WAV one device latency after they were captured: wait until every sample up
  // to the stop request is on disk (bounded), then send q, the stop that finalizes the WAV.
  const drainThenStop = async (untilEpochS: number) => {
    const offset = growth.dataOffset() ?? readWavInfo(audioFile)?.dataOffset ?? null // the looks found it already
    const startNow = startChecked() // a stamp seconds late would stop the drain that much early
    if (startNow && offset !== null) {
      const targetBytes = offset + (untilEpochS - startNow.epochS) * s.sampleRate * frameBytes
      const deadline = Date.now() + MAX_DRAIN_MS
      const looked = Date.now() + CLOCK_LOOK_MS
      while (stops.count === 1 && Date.now() < deadline && (growth.look() < targetBytes || Date.now() < looked))
        await sleep(LOOK_EVERY_MS)
    }
    if (stops.count > 1) return
    run.child.stdin.end('q')
    escalation = setTimeout(() => run.signal('SIGINT'), 3000) // q not read: one SIGINT still finalizes
  }
  const onStop = () => {
    if (stops.count === 1) void drainThenStop(stops.firstEpochS ?? Date.now() / 1000)
    else run.signal(stops.count === 2 ? 'SIGINT' : 'SIGKILL')
  }
  stops.onRequest(onStop)
  // A ctrl-c while ffmpeg was being started was counted with no one to act on it: act now, once
  // (a second one counted too is one SIGINT, as it would have been).
  if (stops.count > 0) onStop()
  const killOnExit = () => run.signal('SIGINT') // a crash of this script must not leave ffmpeg recording
  process.on('exit', killOnExit)
  const result = await run.child
  growth.stop()
  clearTimeout(escalation)
  process.off('exit', killOnExit)
  // Through the watchdog a death by signal n comes back as the shell's 128 + n (ffmpeg's own 255 is no signal).
  const viaShell = run.watchdog && result.exitCode != null && result.exitCode > 128 && result.exitCode < 128 + 65
  const signal = viaShell ? signalName((result.exitCode as number) - 128) : (result.signal as NodeJS.Signals | null)
  return {
    exitCode: viaShell ? null : result.exitCode,
    signal,
    log: log.text(),
    start: log.start ?? (fs.existsSync(audioFile) ? { epochS: run.spawnEpochS, source: 'spawn-time' } : null),
    stopRequestedEpochS: stops.firstEpochS,
    exitedEpochS: Date.now() / 1000,
    looks: growth.looks,
    arrivals: growth.arrivals,
    deliveryS: (await pipewire) ? PIPEWIRE_DELIVERY_S : 0,
    // Gone: it answered at the start and not now (an alsa card without a server is never said to be one).
    serverGone:
      stops.firstEpochS === null && !signal && (await serverAtStart) === true
        ? (await soundServerAnswers(format)) === false
        : false,
    envelopeBiasS: (await pipewire) ? PIPEWIRE_CYCLE_S / 2 : 0,
  }
}

/**
 * ffmpeg started through the watchdog (where setpriv exists), in a session of its own, so that a
 * terminal's ctrl-c reaches only this process, which then stops ffmpeg exactly once (a second
 * signal would abort its writes). `signal` reaches ffmpeg itself, once its PID is known.
 */
async function startFfmpeg(ffmpeg: string, args: string[]) {
  const setpriv = process.platform === 'linux' ? await which('setpriv', { nothrow: true }) : null
  const watchdog = captureLauncher(setpriv)
  const spawnEpochS = Date.now() / 1000
  const child = $({
    nothrow: true,
    quiet: true,
    detached: process.platform !== 'win32',
    stdio: ['pipe', watchdog.length ? 'pipe' : 'ignore', 'pipe'],
  })`exec ${watchdog} ${ffmpeg} ${args}`
  let ffmpegPid: number | null = null // through the watchdog: the PID it prints
  let pendingSignal: NodeJS.Signals | null = null // asked for before the PID was known
  const signal = (name: NodeJS.Signals) => {
    const pid = watchdog.length ? ffmpegPid : (child.child?.pid ?? null)
    if (pid == null) pendingSignal = name
    else if (child.child?.exitCode === null && child.child?.signalCode === null)
      try {
        process.kill(pid, name)
      } catch {
        /* exited meanwhile */
      }
  }
  if (watchdog.length)
    child.stdout.once('data', (chunk: Buffer) => {
      ffmpegPid = Number.parseInt(chunk.toString(), 10) || null
      if (pendingSignal) signal(pendingSignal)
    })
  child.stdin.on('error', () => {
    /* ffmpeg already gone: its exit is handled by the capture */
  })
  return { child, signal, watchdog: watchdog.length > 0, spawnEpochS }
}

/** ffmpeg's stderr: its head until the start is found (the Input #0 block comes early), and its tail. */
function readFfmpegLog(
  child: { stderr: NodeJS.ReadableStream },
  s: { format: Format; sampleRate: number },
  onStart: (start: AudioStart) => void,
) {
  let head = ''
  let tail = ''
  const log = {
    start: null as AudioStart | null,
    text: () => (log.start ? `${head}\n…\n${tail}` : tail),
  }
  child.stderr.on('data', (chunk: Buffer) => {
    const text = chunk.toString('utf8')
    tail = (tail + text).slice(-65536)
    if (log.start || head.length > 1 << 20) return
    head += text
    log.start = parseInputStart(head, s.format, s.sampleRate) ?? null
    if (log.start) onStart(log.start)
  })
  return log
}

/**
 * The WAV's growth: the sound card's clock looked at closely for a moment after the start and at
 * every CLOCK_BURST_EVERY_MS (the live status adds a look a tick in between; see cardClock), and the
 * first sample's witness: each write seen the moment it lands (inotify), from the file's creation
 * until ARRIVAL_WINDOW_S into its data, polling where no watcher can be had.
 */
function watchGrowth(audioFile: string, frameBytes: number, recording: () => boolean) {
  const looks: RateObservation[] = []
  const arrivals: RateObservation[] = []
  let dataOffset: number | null = null
  const observe = (clock: boolean) => {
    dataOffset ??= readWavInfo(audioFile)?.dataOffset ?? null
    const bytes = fileBytes(audioFile)
    if (dataOffset !== null && bytes > dataOffset) {
      const seen = { epochS: Date.now() / 1000, frames: Math.floor((bytes - dataOffset) / frameBytes) }
      arrivals.push(seen)
      if (clock) looks.push(seen)
    }
    return bytes
  }
  const look = () => observe(true)
  const clockWatch = new AbortController()
  const watching = () => !clockWatch.signal.aborted && recording()
  let unwatch = () => {}
  const watchArrivals = () => {
    unwatch = watchWrites(audioFile, () => {
      observe(false)
      const first = arrivals[0]
      if (!watching() || (first && Date.now() / 1000 - first.epochS > ARRIVAL_WINDOW_S)) unwatch()
    })
    observe(false) // what landed before the watcher
  }
  const pause = (ms: number) => sleep(ms, undefined, { signal: clockWatch.signal, ref: false })
  const burst = async (ms: number) => {
    for (const until = Date.now() + ms; Date.now() < until && watching(); await sleep(LOOK_EVERY_MS)) look()
  }
  const run = (onWindowEnd: () => void) =>
    void (async () => {
      while (watching() && look() === 0) await sleep(LOOK_EVERY_MS)
      if (watching()) watchArrivals()
      void pause(1000 * (ARRIVAL_WINDOW_S + 0.5))
        .then(onWindowEnd)
        .catch(() => {
          /* aborted with the capture */
        })
      // The device's first packets come early (start-up): the first burst waits them out.
      for (let ms = CLOCK_SETTLE_MS; watching(); ms = CLOCK_BURST_EVERY_MS) {
        await pause(ms)
        await burst(CLOCK_BURST_MS)
      }
    })().catch(() => {
      /* aborted with the capture */
    })
  const stop = () => {
    clockWatch.abort()
    unwatch()
  }
  return { looks, arrivals, look, dataOffset: () => dataOffset, run, stop }
}

/**
 * Calls `onWrite` as each write to `file` lands (inotify, through fs.watch), else every ARRIVAL_POLL_MS;
 * returns the stop.
 */
export function watchWrites(file: string, onWrite: () => void): () => void {
  try {
    const watcher = fs.watch(file, { persistent: false }, onWrite)
    watcher.on('error', () => watcher.close()) // the file gone: nothing more to see
    return () => watcher.close()
  } catch {
    const poll = setInterval(onWrite, ARRIVAL_POLL_MS)
    return () => clearInterval(poll)
  }
}

function signalName(n: number): NodeJS.Signals | null {
  const found = Object.entries(os.constants.signals).find(([, number]) => number === n)
  return found ? (found[0] as NodeJS.Signals) : null
}

async function record(s: Settings): Promise<number> {
  const { ffmpeg, ffprobe } = await findTools(s.ffmpeg)
  const feedDir = s.feedId == null ? null : path.resolve(s.feedId)
  const timing = timingOf(s)
  const several = s.inputs.length > 1
  const summary = new Summary(s.verbose)
  let made: { parts: AudioPart[]; record: SyncRecord } | null = null
  const { audioFiles, syncFile } = reserveNames(s, (files) => {
    made = newRecording(s, feedDir, timing, files)
    return made.record
  })
  const { parts, record } = made as unknown as { parts: AudioPart[]; record: SyncRecord }
  // A timesync file that exists now is rewritten when the recorder stops: --mux waits for it.
  const expectedTimesync = timesyncFileFor(s.timesyncFile, feedDir, null)
  const timesyncExpected = expectedTimesync != null && fs.existsSync(expectedTimesync)
  const stops = new StopRequests()
  try {
    announce(s, audioFiles)
    const csvWatch = watchTrackingCsvs(feedDir)
    const csvLooks = everyJittered(csvWatch.look, CSV_LOOK_MS) // the live status looks only every 1–2.5 s
    const feedWatch = feedDir && !s.videoFile ? watchFeed(feedDir, process.cwd(), Date.now()) : null
    const feedLooks = feedWatch ? everyJittered(feedWatch.look, FEED_LOOK_MS) : null
    const views = stops.fanOut(s.inputs.length, () => sayStopping(stops.count, several))
    const onStart = (k: number) => (start: AudioStart) => {
      // The one fact nothing else holds: on disk the moment it is known.
      Object.assign(parts[k], { audioStartEpochS: start.epochS, audioStartSource: start.source })
      if (start.source !== 'arrival-envelope') parts[k].audioStartStampEpochS = start.epochS // kept if overruled
      if (k === 0) Object.assign(record, audioFieldsOf(parts[0]))
      saveSync(syncFile, record)
    }
    const status = startLiveStatus(
      s.inputs.map((input, k) => ({ ...input, file: audioFiles[k] })),
      () => stops.count > 0,
      csvWatch.look,
    )
    const captures = await Promise.all(
      s.inputs.map((input, k) => capture(s.format, input, ffmpeg, audioFiles[k], views[k], onStart(k))),
    )
    status.stop()
    csvLooks.stop()
    feedLooks?.stop()
    const watchedCsv = csvWatch.epochs()
    record.trackingCsvWatched = [...watchedCsv].map(([file, { source, ...epoch }]) => ({ file, ...epoch }))
    const failed = settleCaptures(s, parts, captures, { ffmpeg, summary, audioFiles })
    const recorded = parts.find((part) => part.audioStartEpochS != null)
    if (!recorded) {
      fs.rmSync(syncFile, { force: true }) // ours, and it holds nothing: no recording was made
      return 1
    }
    const stopped = { state: 'stopped' as const, audios: several ? parts : null, notes: summary.notes }
    Object.assign(record, audioFieldsOf(recorded), stopped) // the notes said of the audio kept, whatever comes
    if (!saveSync(syncFile, record)) {
      say(`✖ Could not write ${syncFile}; its content:\n${JSON.stringify(record)}`)
      return 1
    }
    const f = { ...s, feedDir, searchRoot: process.cwd(), ffmpeg, ffprobe, timesyncExpected, watchedCsv, summary }
    const finished = await finish(record, syncFile, f, stops)
    return failed ? 1 : finished
  } finally {
    stops.dispose()
  }
}

const NO_SAMPLE = 'no sample recorded'

/** The settings that shaped the offset, as the sync record keeps them. */
function timingOf(s: TimingSettings): TimingSettings {
  const { timesyncFile, videoStartEpochS, clockOffsetS, cameraLatencyS, calibration, driftFix, events, allVideos } = s
  return { timesyncFile, videoStartEpochS, clockOffsetS, cameraLatencyS, calibration, driftFix, events, allVideos }
}

/** A recording's record before its first sample: one part per device, the first's fields on top. */
function newRecording(s: Settings, feedDir: string | null, timing: TimingSettings, files: string[]) {
  const parts: AudioPart[] = s.inputs.map((input, k) => ({
    ...audioFieldsOf(
      newSyncRecord({
        tool: '',
        feedDir,
        audioFile: path.resolve(files[k]),
        audioFormat: s.format,
        audioDevice: input.device,
        audioSampleRate: input.sampleRate,
        audioChannels: input.channels,
        timing,
      }),
    ),
    audioFailed: null,
  }))
  const record: SyncRecord = {
    ...newSyncRecord({ tool: `record-audio ${packageVersion()}`, feedDir, timing, ...parts[0] }),
    audios: parts.length > 1 ? parts : null,
    settings: s.inForce ? { ...s.inForce, ...runningScript() } : null,
  }
  return { parts, record }
}

/** The first stop request, and the second (a third kills ffmpeg, said by nobody: it is the last resort). */
function sayStopping(count: number, several: boolean): void {
  if (count === 1) say(`■ Stopping: ffmpeg is writing the last samples and finishing the WAV${several ? 's' : ''}…`)
  else if (count === 2)
    say(
      '■ Stopping now (ctrl-c again kills ffmpeg; the samples on disk are kept,' +
        ' but the WAV header may be unfinished).',
    )
}

/** What is recorded, from which device, where; and a muxed file that cannot be an mp4 with AAC. */
function announce(s: Settings, audioFiles: string[]): void {
  for (const [k, input] of s.inputs.entries()) {
    const channels = input.channels === 1 ? 'mono' : input.channels === 2 ? 'stereo' : `${input.channels} channels`
    say(
      `● Recording ${s.format} device ${JSON.stringify(input.device)} (${input.sampleRate} Hz, ${channels})` +
        ` to ${audioFiles[k]}.${k === s.inputs.length - 1 ? ' Press ctrl-c to stop.' : ''}`,
    )
  }
  const codec = muxCodecFor(s.inputs)
  if (codec.why) say(`  ${codec.why}: the muxed file will be Matroska (.mkv) with ${CODEC_NAMES[codec.codec]} audio.`)
}

/**
 * Each device's capture into its part, said; a WAV without a sample removed (ffmpeg made it, no
 * recording was made). Returns whether any device failed.
 */
function settleCaptures(
  s: Settings,
  parts: AudioPart[],
  captures: Capture[],
  o: { ffmpeg: string; summary: Summary; audioFiles: string[] },
): boolean {
  let failed = false
  for (const [k, input] of s.inputs.entries()) {
    const label = parts.length > 1 ? `device ${k + 1} (${JSON.stringify(input.device)}): ` : ''
    const why = audioOf(parts[k], input, captures[k], { format: s.format, ffmpeg: o.ffmpeg, label, summary: o.summary })
    if (why !== null) {
      failed = true
      parts[k].audioFailed = why
    }
  }
  for (const [k, part] of parts.entries())
    if (part.audioFailed?.startsWith(NO_SAMPLE)) {
      fs.rmSync(o.audioFiles[k], { force: true })
      Object.assign(part, { audioStartEpochS: null, audioStartSource: null }) // its device opened, nothing more
    }
  return failed
}

/**
 * One device's capture, said and put into its part of the record: its length, first sample, card
 * clock and span check. Returns why it failed (the samples it has are kept), or null.
 */
function audioOf(
  part: AudioPart,
  input: AudioInput,
  captured: Capture,
  { format, ffmpeg, label, summary }: { format: Format; ffmpeg: string; label: string; summary: Summary },
): string | null {
  const audioFile = path.relative(process.cwd(), part.audioFile) || part.audioFile
  const noData = (readWavInfo(audioFile)?.dataBytes ?? 0) === 0
  if (noData && captured.stopRequestedEpochS !== null && captureOutcome(captured).ok) {
    say(`■ ${label}Stopped before the first sample reached ${audioFile}: nothing was recorded.`)
    return `${NO_SAMPLE}: stopped before the first sample`
  }
  if (!fs.existsSync(audioFile) || fileBytes(audioFile) === 0 || !captured.start) {
    if (fileBytes(audioFile) === 0) fs.rmSync(audioFile, { force: true }) // this run's empty reservation
    failedToStart(format, input.device, ffmpeg, audioFile, captured.log)
    return `${NO_SAMPLE}: ${ffmpegErrorLine(captured.log)}`
  }
  const outcome = captureOutcome(captured)
  const wav = readWavInfo(audioFile)
  const durationS = wav ? wav.dataBytes / (wav.channels * (wav.bitsPerSample / 8) * wav.sampleRate) : null
  const measured = measureAudio(input, { ...captured, start: captured.start }, durationS)
  Object.assign(part, measured.fields)
  const facts = { ...measured, label, device: input.device, audioFile, durationS, nominalHz: input.sampleRate }
  summary.tell(audioNotes({ ...facts, wavFinalized: wav?.finalized ?? true, failed: outcome.ok ? null : outcome }))
  return outcome.ok ? null : outcome.why
}

/**
 * One device's capture, measured: the first sample (the device's stamp checked against the samples'
 * arrival), the card's clock and the ratio the mux applies, and whether the WAV's length fits the
 * wall time from its first sample to the stop.
 */
function measureAudio(input: AudioInput, captured: Capture & { start: AudioStart }, durationS: number | null) {
  // The card's rate does not depend on where the start is (only the envelope's slope counts), and
  // places the arrivals better than the nominal rate when it is known.
  const clock = cardClock(captured.looks, captured.start.epochS, input.sampleRate)
  const envelope = arrivalEnvelope(captured.arrivals, clock?.rateHz ?? input.sampleRate)
  const check = checkAudioStart(captured.start, envelope, captured.deliveryS, captured.envelopeBiasS)
  const start = check.start
  const fields: Partial<AudioPart> = {
    audioStartEpochS: start.epochS,
    audioStartSource: start.source,
    audioStartStampEpochS: check.stampEpochS,
    audioStartEnvelopeEpochS: check.envelopeEpochS,
    audioStartUncertaintyS: check.uncertaintyS,
    audioStartCheck: check.kind,
    audioDeliveryLatencyS: check.deliveryLatencyS,
    audioDurationS: durationS,
  }
  if (clock && durationS != null)
    Object.assign(fields, {
      audioClockHz: clock.rateHz,
      audioClockPpm: clock.ppm,
      audioClockUncertaintyPpm: clock.uncertaintyPpm,
      audioClockRatio: clockRatio(clock, input.sampleRate, durationS),
    })
  // The WAV holds every sample from the first one's time to the stop, and no more than ffmpeg could
  // read before it exited: a length outside that means the device's timestamps or samples jumped.
  let span: { ok: boolean; wallSpanS: number } | null = null
  if (durationS != null && captured.stopRequestedEpochS !== null) {
    span = checkAudioSpan(
      clock ? durationS * (input.sampleRate / clock.rateHz) : durationS,
      captured.stopRequestedEpochS - start.epochS,
      captured.exitedEpochS - start.epochS,
      clock ? clock.uncertaintyPpm : UNMEASURED_CLOCK_PPM,
    )
    Object.assign(fields, { audioWallSpanS: span.wallSpanS, audioStartDoubtful: !span.ok })
  }
  return { fields, clock: durationS == null ? null : clock, check, span }
}

/** A line with what it can carry of the optional tails and still fit SUMMARY_WIDTH (the head always whole). */
function fitted(head: string, tails: string[]): string {
  let line = head
  for (const tail of tails) if ([...(line + tail)].length <= SUMMARY_WIDTH) line += tail
  return line
}

/** How the first sample was placed, in the default line's words (the sync file keeps the source's name). */
const START_WORDS: Record<AudioStart['source'], string> = {
  'ffmpeg-input-start': "device's stamp",
  'ffmpeg-wallclock': "ffmpeg's clock",
  'spawn-time': "ffmpeg's launch",
  'arrival-envelope': "samples' arrival",
}

/** The first sample's check by default: what was wrong, what placed the sample, and what tells more. */
function startCheckShort(check: StartCheck, label: string): string {
  const who = label.replace(/ \(.*\): $/, ': ') // "device 2: ": the Audio line beside it names it
  const ms = `${Math.abs((check.deliveryLatencyS ?? 0) * 1000).toFixed(0)} ms`
  const before = `the start stamp is ${ms} before the samples' arrival`
  switch (check.kind) {
    case 'no-stamp':
      return `⚠ ${who}ffmpeg printed no start time: the first sample is placed by its arrival (--verbose: how).`
    case 'stamp-late':
      return `⚠ ${who}the start stamp came ${ms} late (samples on disk first): placed by their arrival (--verbose).`
    case 'stamp-early':
      return `⚠ ${who}${before}, past any queue: placed by the arrival (--events tells).`
    default:
      return `⚠ ${who}${before}: the stamp is used, nothing decides (--events does).`
  }
}

/** What is said of one device's audio: its line (✔ when the stamp and the arrivals agree), and every doubt. */
export function audioNotes(a: {
  label: string // several devices: which one
  device: string
  audioFile: string
  durationS: number | null
  nominalHz: number
  wavFinalized: boolean
  failed: { stoppedByItself: boolean; why: string } | null
  check: StartCheck
  clock: CardClock | null
  fields: Partial<AudioPart>
  span: { ok: boolean; wallSpanS: number } | null
}): Note[] {
  const { label, audioFile, check } = a
  const notes: Note[] = []
  const tell = (kind: NoteKind, text: string, short?: string) =>
    notes.push({ kind, text, ...(short ? { short } : {}), topic: 'audio' })
  if (a.failed)
    tell(
      'error',
      a.failed.stoppedByItself
        ? `✖ ${label}${a.failed.why}. The audio recorded so far is kept.`
        : `✖ ${label}ffmpeg failed while finishing ${audioFile}: ${a.failed.why}. The samples on disk are kept;` +
            ` check the header with: record-audio repair ${quotePosix(audioFile)}`,
    )
  // ✔: the stamp and the samples' arrival agree, within about a frame (a longer queue before the
  // arrival leaves the start that uncertain); a check that disagreed says so on its own line.
  const agreed = startAgreed({ audioStartCheck: check.kind, audioDeliveryLatencyS: check.deliveryLatencyS })
  const mark = agreed && (check.uncertaintyS ?? 0) <= TRUSTED_WITHIN_S ? '✔' : ' '
  const length = a.durationS == null ? '' : ` (${a.durationS.toFixed(2)} s)`
  const at = new Date(check.start.epochS * 1000).toISOString()
  const how = check.start.source
  tell(
    mark === '✔' ? 'ok' : 'plain',
    `${mark} ${label ? `Audio, ${label}` : 'Audio: '}${audioFile}${length}, first sample at ${at}` +
      ` (${START_WORDS[how]})`,
    fitted(`${mark} Audio${label ? `, ${JSON.stringify(a.device)}` : ''}: ${audioFile}${length}, first sample ${at}`, [
      ` (${START_WORDS[how]})`,
    ]),
  )
  const checkLine = describeStartCheck(check)
  if (checkLine)
    tell(
      agreed ? 'detail' : 'warning',
      `${checkLine.slice(0, 2)}${label}${checkLine.slice(2)}`,
      startCheckShort(check, label),
    )
  if (!a.wavFinalized)
    tell(
      'warning',
      '⚠ The WAV header was not finalized, so some readers misreport its length:' +
        ` record-audio repair ${quotePosix(audioFile)}`,
    )
  if (check.start.source === 'spawn-time')
    tell(
      'warning',
      '⚠ ffmpeg printed no start time: the audio start is the time ffmpeg was started, typically 80–120 ms early.',
    )
  if (a.clock) notes.push(cardClockNote(a.clock, a.fields.audioClockRatio !== 1, a.nominalHz, label))
  if (a.span && !a.span.ok && a.durationS != null)
    tell(
      'warning',
      `⚠ ${label}The WAV holds ${a.durationS.toFixed(3)} s but ${a.span.wallSpanS.toFixed(3)} s passed from its` +
        " first sample to the stop: the device's timestamps or samples jumped, so the audio start is doubtful.",
    )
  return notes
}

/** The sound card's clock: what was corrected is said; a card within what can be told is for --verbose. */
function cardClockNote(clock: CardClock, corrected: boolean, nominalHz: number, label: string): Note {
  const ppm = `${signed(clock.ppm, 0, '')} ± ${clock.uncertaintyPpm.toFixed(0)} ppm`
  return {
    kind: corrected ? 'plain' : 'detail',
    text:
      `  Sound card clock: ${clock.rateHz.toFixed(2)} Hz, ${ppm} off its nominal ${nominalHz} Hz` +
      ` (measured over ${clock.spanS.toFixed(0)} s): ` +
      (corrected
        ? label
          ? "corrected in the mux: the first device's card sets the timeline, each other's is played at its rate."
          : 'the muxed timeline follows the card, the audio untouched, the video retimed to it.'
        : 'within what it can tell over this recording, nothing to correct.'),
    short:
      `  Sound card clock: ${ppm} off its nominal ${nominalHz} Hz (over ${clock.spanS.toFixed(0)} s): ` +
      (label ? 'each card played at its own rate in the mux.' : 'the video retimed to it, the audio untouched.'),
    topic: 'audio',
  }
}

/** ffmpeg never wrote a sample: a device that would not open, or a file it could not create. */
function failedToStart(format: Format, device: string, ffmpeg: string, audioFile: string, log: string): void {
  const notFfmpeg = notFfmpegReason(ffmpeg)
  if (notFfmpeg) {
    say(`✖ ${notFfmpeg}: pass --ffmpeg /path/to/ffmpeg (nothing was recorded)`)
    return
  }
  const why = ffmpegErrorLine(log)
  if (why.includes(path.resolve(audioFile)) || /Permission denied|Read-only file system|No space left/i.test(why)) {
    say(`✖ ffmpeg could not write ${audioFile}: ${why.replace(`${path.resolve(audioFile)}: `, '')}.`)
    say('  Record into a folder you can write to (--out), with space left.')
    return
  }
  say(`✖ ffmpeg could not record from ${format} device ${JSON.stringify(device)}: ${why}`)
  const near = format === 'alsa' || format === 'pulse' ? didYouMean(device, deviceNames(format, ffmpeg)) : null
  if (near)
    say(`  Did you mean --device ${quotePosix(near)}? All of them: record-audio --list-devices --format ${format}`)
  else say(`  List the devices with: record-audio --list-devices --format ${format}`)
}

/** Why the program given as ffmpeg is not one (`-version` prints no "ffmpeg version", bounded), or null. */
function notFfmpegReason(ffmpeg: string): string | null {
  const out = spawnSync(ffmpeg, ['-version'], { encoding: 'utf8', timeout: 5000 })
  if (/^ffmpeg version/m.test(out.stdout ?? '')) return null
  const how = out.error
    ? ((out.error as NodeJS.ErrnoException).code ?? out.error.message)
    : out.signal
      ? `ended by ${out.signal}`
      : `exit ${out.status}`
  return `${ffmpeg} does not run as ffmpeg (its -version printed no "ffmpeg version"; ${how})`
}

/** The device names ffmpeg lists for a format, asked with a bound on the wait (a failure path: [] if none). */
function deviceNames(format: Format, ffmpeg: string): string[] {
  const out = spawnSync(ffmpeg, listDevicesArgs(format), { encoding: 'utf8', timeout: 3000 })
  return parseSources(`${out.stdout ?? ''}${out.stderr ?? ''}`).map((d) => d.name)
}

/** What the sync record says of the audio: all that the offset and the mux need. */
interface AudioFacts {
  file: string
  device: string | null
  startEpochS: number
  sampleRate: number
  channels: number
  durationS: number | null
  clockRatio: number
  startCheck: StartCheckKind | null // the first sample's check: a second witness of startEpochS
  startUncertaintyS: number | null
  startDoubtful: boolean // the WAV's length and the wall time since its first sample disagree
  clockErrorPpm: number // how far the card's clock may be off what is applied for it
  others: AudioFacts[] // the other devices that recorded, each its own stream in the mux
}

function audioFacts(r: Pick<SyncRecord, (typeof AUDIO_KEYS)[number] | 'audios'>): AudioFacts {
  const others = (r.audios ?? [])
    .filter((part) => part.audioStartEpochS != null && part.audioFile !== r.audioFile)
    .map((part) => ({ ...audioFacts({ ...part, audios: null }), clockRatio: otherClockRatio(r, part) }))
  return {
    file: r.audioFile,
    device: r.audioDevice,
    startEpochS: r.audioStartEpochS as number,
    sampleRate: r.audioSampleRate,
    channels: r.audioChannels,
    durationS: r.audioDurationS,
    clockRatio: r.audioClockRatio,
    startCheck: startAgreed(r) ? 'plausible' : r.audioStartCheck,
    startUncertaintyS: r.audioStartUncertaintyS,
    startDoubtful: r.audioStartDoubtful === true,
    clockErrorPpm: (r.audioClockRatio === 1 ? Math.abs(r.audioClockPpm ?? 0) : 0) + (r.audioClockUncertaintyPpm ?? 0),
    others,
  }
}

/** Where the timing comes from and where the results go, for a recording and for `mux` alike. */
interface Finishing extends TimingSettings {
  feedDir: string | null
  searchRoot: string // with no feed id: where the subfolders with recordings are
  videoFile: string | null
  muxedFile: string | null
  muxedSuffix: string
  ffmpeg: string
  ffprobe: string | null
  mux: boolean
  waitS: number
  json: boolean
  plotFile: string | null
  timesyncExpected: boolean // a timesync file existed before the video was stopped: --mux waits for its new version
  watchedCsv: Map<string, WatchedEpoch> // tracking CSVs stamped while recording, by absolute path
  ownVideos?: string[] // mux later: the videos the recording was synced to, which --video overrides
  summary: Summary
  stopOffsets?: ReturnType<typeof storedOffsets> // mux later, same timing: the stop's offsets
  stopCsvEpochs?: Map<string, CsvEpoch> // mux later: the tracking CSVs' mtime epochs the stop verified, by name
  movedFromStop?: string[] // mux later: the videos whose offset moved from the stop's with nothing to explain it
}

/** The timesync file to look at: --timesync, else <feed>-timesyncUTC.parquet beside the feed folder. */
function timesyncFileFor(setting: string | null, feedDir: string | null, videoFile: string | null): string | null {
  if (setting != null) return setting
  const dir = feedDir ?? (videoFile ? path.dirname(path.resolve(videoFile)) : null)
  return dir == null ? null : `${dir}-timesyncUTC.parquet`
}

/** A file named like a recording that holds no video (text, or long empty): refused in one line, --mux or not. */
function refuseNotVideo(videoFile: string): void {
  const why = fs.existsSync(videoFile) ? notMp4File(videoFile) : null
  if (why) throw new NotVideo(`${videoFile} is not a video (${why}): give the recording's mp4 with --video`)
}

/**
 * After the capture (or for `mux` later): find the video, wait for it with --mux, measure the
 * offset, save the record, deliver the command or the muxed file. A stop request here only ends
 * the waiting or the mux; the audio and its start are already saved.
 */
async function finish(record: SyncRecord, syncFile: string | null, f: Finishing, stops: StopRequests): Promise<number> {
  let interrupted = false
  const stopped = new AbortController() // ends a wait, and the decoding of --events
  stops.onRequest(() => {
    interrupted = true
    stopped.abort()
  })
  const audio = audioFacts(record)
  let refused = false
  let elsewhere: Note[] = [] // a wrong feed id: the folder whose recording overlaps the audio, and its command
  record.notes = f.summary.notes // the same list: every note said from here on is kept, on every path
  try {
    const search = { videoFile: f.videoFile, feedDir: f.feedDir, searchRoot: f.searchRoot }
    if (f.allVideos) {
      const videos: VideoSync[] = []
      for (const videoFile of f.ownVideos ?? chooseVideos(search, audio, true, f.summary)) {
        try {
          refuseNotVideo(videoFile) // one such file is said, and the other videos still synced
          if (f.mux) await waitForVideo(videoFile, f, () => interrupted)
          videos.push(await syncToVideo(audio, videoFile, f, stopped.signal))
        } catch (error) {
          if (!(error instanceof NoOverlap || error instanceof NotVideo)) throw error
          say(`✖ ${error.message}.`)
          refused = true
        }
      }
      Object.assign(record, videos.at(-1) ?? NO_VIDEO, { videos, state: 'synced' })
    } else {
      const given = { ...search, videoFile: f.videoFile ?? f.ownVideos?.at(-1) ?? null }
      const videoFile = chooseVideos(given, audio, false, f.summary)[0] ?? null
      if (videoFile) refuseNotVideo(videoFile)
      if (f.mux && videoFile) await waitForVideo(videoFile, f, () => interrupted)
      Object.assign(record, await syncToVideo(audio, videoFile, f, stopped.signal), { state: 'synced', videos: null })
      if (!videoFile) elsewhere = recordingElsewhere(audio, f, syncFile)
      f.summary.tell(elsewhere)
    }
  } catch (error) {
    if (!(error instanceof ToolError || (error as NodeJS.ErrnoException).code)) throw error
    say(`✖ ${(error as Error).message}. The audio and its start are saved${syncFile ? ` in ${syncFile}` : ''}.`)
    if (error instanceof NoOverlap && !f.allVideos) f.summary.tell(recordingElsewhere(audio, f, syncFile))
    if (syncFile) saveSync(syncFile, record) // with what was said of the audio
    return 1
  }
  if (syncFile && !saveSync(syncFile, record)) {
    say(`✖ Could not write ${syncFile}; its content:\n${JSON.stringify(record)}`)
    return 1
  }
  if (syncFile) say(`  Timing: ${syncFile}`)
  if (!record.muxCommand && syncFile && !elsewhere.length)
    say(`  Once the video exists: record-audio mux ${quotePosix(syncFile)}`)
  if (!record.muxCommand && !syncFile && !f.json) return 1 // mux later found nothing to mux
  if (interrupted && f.mux) {
    // Stopped while waiting (the video not finished is then not the reason) or reading the events: no mux.
    const later = `record-audio mux ${syncFile ? quotePosix(syncFile) : 'SYNC_FILE'}`
    say(
      f.events
        ? '✖ Interrupted (a stop request) before the mux: nothing was muxed, and the offset may be the' +
            ` anchors' alone. Later: ${later} --events`
        : `✖ Stopped by ${stops.lastSignal ?? 'a stop request'} before the mux (while waiting for the video):` +
            ` nothing was muxed. Later: ${later}`,
    )
    const delivered = await deliver(record, { ...f, mux: false }, stops)
    f.summary.end()
    return Math.max(1, delivered)
  }
  if (f.movedFromStop?.length) {
    // Two witnesses disagree and nothing decides: the command is printed, nothing is muxed.
    const delivered = await deliver(record, { ...f, mux: false }, stops)
    f.summary.end()
    return Math.max(1, delivered)
  }
  const delivered = await deliver(record, f, stops)
  f.summary.end()
  return refused ? 1 : delivered
}

/**
 * A feed folder without this audio's recording (a mistyped feed id): the folder beside it whose
 * recording overlaps the audio most, and the exact command that syncs to it. [] when none does.
 */
function recordingElsewhere(audio: AudioFacts, f: Finishing, syncFile: string | null): Note[] {
  if (!f.feedDir) return []
  let spans: Omit<Candidate, 'overlapS'>[]
  try {
    spans = recordingSpans(
      subfolders(f.searchRoot).filter((dir) => path.resolve(dir) !== path.resolve(f.feedDir ?? '')),
    )
  } catch {
    return [] // the search root unreadable: the warning already said what is missing
  }
  const best = rankByOverlap(spans, audio.startEpochS, audioEndEpochS(audio))[0]
  if (!best || best.overlapS <= 0) return []
  const cwd = process.cwd()
  const quote = process.platform === 'win32' ? quotePowerShellArg : quotePosix
  const folder = shownPath(path.dirname(best.file), cwd)
  const overlap = best.overlapS.toFixed(1)
  const command = `record-audio mux ${quote(syncFile ?? 'SYNC_FILE')} --video ${quote(shownPath(best.file, cwd))}`
  return [
    {
      kind: 'warning',
      text: `⚠ The recording that overlaps the audio (${overlap} s of it) is in ${folder}${path.sep}: sync to it with`,
    },
    { kind: 'plain', text: `  ${command}` },
  ]
}

/**
 * TracktorLive's tracking CSV for a video: in the same folder, the greatest `<ULID>.csv` minted
 * before the video (in the server's constructor, seconds at most before the writer), with a row
 * per frame. null clock, with a note: none, or one that cannot be used; epochNote: a witness of
 * its epoch that was not used, and why.
 */
function trackedClock(
  videoFile: string,
  frames: number,
  nominalFps: number,
  watched: Map<string, WatchedEpoch>,
  atStop: Map<string, CsvEpoch> = new Map(), // mux later: the mtime epochs the stop verified, by the CSV's name
): {
  file: string
  clock: TrackedClock | null
  refused?: FrameClockRefused
  note: string | null
  epochNote?: string | null
} | null {
  const dir = path.dirname(path.resolve(videoFile))
  const videoMs = ulidTimeMs(path.basename(videoFile))
  let names: string[]
  try {
    names = fs.readdirSync(dir)
  } catch {
    return null
  }
  const csv = names
    .filter((n) => TRACKING_CSV_NAME.test(n))
    .filter((n) => ulidTimeMs(n) <= videoMs && ulidTimeMs(n) >= videoMs - CSV_BEFORE_VIDEO_S * 1000)
    .sort((a, b) => ulidTimeMs(a) - ulidTimeMs(b))
    .at(-1)
  if (!csv) return null
  const file = path.join(dir, csv)
  let times: number[]
  try {
    const text = readRegular(file, CSV_READ_MAX_BYTES)
    if (text == null) return { file, clock: null, note: `${csv} is not a regular file: not used` }
    times = parseTrackingTimes(text)
  } catch (error) {
    return { file, clock: null, note: `${csv} cannot be read (${(error as Error).message}): not used` }
  }
  if (isFileSourceClock(times, nominalFps))
    return { file, clock: null, note: `${csv} comes from a video file (time = frame / fps): no clock in it` }
  if (Math.abs(times.length - frames) > 1)
    return {
      file,
      clock: null,
      note: `${csv} has ${times.length} rows for ${frames} frames: not this video's, not used`,
    }
  const window = ulidWindow(ulidTimeMs(csv) / 1000, videoMs / 1000, times[0])
  const fromMtime = csvEpochFromMtime(fs.statSync(file).mtimeMs / 1000, times[times.length - 1])
  // By name: the folder may have moved since (its ULID names it alone).
  const seen = [...watched].find(([watchedFile]) => path.basename(watchedFile) === csv)?.[1] ?? null
  const { epoch, notes } = chooseCsvEpoch(fromMtime, seen, window, atStop.get(csv) ?? null)
  const said = notes.map((n) => describeCsvEpochNote(n, csv)).join('; ')
  const moved = notes.some((n) => n.kind === 'mtime-moved-since-stop')
  const kept =
    epoch?.source === 'watched'
      ? 'the rows seen while recording are used'
      : moved
        ? 'the epoch the stop verified from its mtime is used'
        : 'its mtime is used'
  const epochNote = said ? `${said}; ${epoch ? kept : 'nothing else puts its times on the wall clock'}` : null
  if (!epoch) return { file, clock: null, note: `${csv} is not used`, epochNote }
  const clock = frameClock(times, epoch.tInitEpochS, nominalFps)
  if (!clock) return { file, clock: null, note: `${csv} has too few rows for a frame clock`, epochNote }
  if ('refused' in clock) return { file, clock: null, refused: clock, note: null, epochNote }
  const lastReadEpochS = epoch.tInitEpochS + times[times.length - 1]
  return { file, clock: { ...clock, epoch, lastReadEpochS }, note: null, epochNote }
}

const CSV_READ_MAX_BYTES = 1 << 28 // a tracking CSV's whole text: days of rows at 30 fps, never a disk's worth
const CSV_BEFORE_VIDEO_S = 120 // the server's constructor, then the camera's opening and the writer's

// Audio decoded beyond the video's span as the anchors place it: how far off they may be and the events still pair.
const EVENT_SEARCH_MARGIN_S = MAX_EVENT_OFFSET_S

/**
 * --events: the anchors' offset and retiming, aligned on the flashes and clicks; null when they cannot
 * be read (or a stop request came while reading them: `stopped` is aborted, and finish says so).
 * Only the audio within EVENT_SEARCH_MARGIN_S of the video's span, as the anchors place it, is decoded.
 */
async function eventsFor(
  videoFile: string,
  v: { finalized: boolean; durationS: number | null },
  audio: AudioFacts,
  anchors: { offsetS: number; itsscale: number | null; videoUncertaintyS: number | null },
  f: Finishing,
  stopped: AbortSignal,
  notes: Note[],
): Promise<ReturnType<typeof alignOnEvents> | null> {
  const warn = (text: string) => notes.push({ kind: 'warning', text: `⚠ Events: ${text}` })
  const interrupted = () => {
    warn(`${eventNoteText({ kind: 'interrupted' })}; aligned on the anchors.`)
    return null
  }
  if (stopped.aborted) return interrupted()
  if (!v.finalized || !f.ffprobe) {
    warn(`${v.finalized ? 'ffprobe is missing' : 'the video is not finished yet'}; aligned on the anchors.`)
    notes.push({
      kind: 'advice',
      key: 'events-later',
      changes: true,
      text: '  Once it is: record-audio mux SYNC_FILE --events',
    })
    return null
  }
  // The video's span on the WAV's timeline (the muxed timeline less the offset), widened both ways.
  const firstS = Math.max(0, -anchors.offsetS * audio.clockRatio - EVENT_SEARCH_MARGIN_S)
  const span =
    v.durationS == null
      ? undefined
      : { startS: firstS, durationS: v.durationS - anchors.offsetS * audio.clockRatio + EVENT_SEARCH_MARGIN_S - firstS }
  try {
    const found = await findEvents(f.ffmpeg, f.ffprobe, videoFile, audio.file, {
      span: span && span.durationS > 0 ? span : undefined,
      signal: stopped,
    })
    const aligned = alignOnEvents({
      ...found,
      offsetS: anchors.offsetS,
      itsscale: anchors.itsscale,
      clockRatio: audio.clockRatio,
      videoDurationS: v.durationS,
      anchorDoubtS: anchorDoubtFor(audio.startUncertaintyS, anchors.videoUncertaintyS),
    })
    const { fit } = aligned
    const foundText = `${found.flashesS.length} flashes, ${found.clicksS.length} clicks`
    if (!fit.consistent) warn(`${aligned.summary.why} (${foundText}); aligned on the anchors.`)
    else {
      const rate = fit.slope ? `, the video retimed by ${(fit.slope * 1e6).toFixed(0)} ppm` : ''
      const off = describeEventFit(fit).replace(/^\d+ events: sound /, '')
      const { used, medianMs } = aligned.summary
      const by = `${signed(medianMs ?? 0, 1, 'ms')} (${used} events)`
      // A regular train whose tie only the anchors broke rests on the anchors, not on the events: no ✔.
      const tie = fit.notes.find((note) => note.kind === 'tie-broken-by-anchors')
      const mark = tie ? '⚠' : '✔'
      const how = tie ? ` (${eventNoteText(tie)})` : ''
      notes.push({
        kind: tie ? 'warning' : 'ok',
        text: `${mark} Events: the anchors were off by ${off}; aligned on them${rate}${how}.`,
        short: `${mark} Events: the anchors were off by ${by}; aligned on them${rate}${tie ? ' (tie: anchors)' : ''}.`,
      })
      for (const note of fit.notes)
        if (note !== tie) notes.push({ kind: 'detail', text: `  Events: ${eventNoteText(note)}.` })
    }
    return aligned
  } catch (error) {
    // Whatever failed (ffmpeg, a decoder's odd output, memory), the anchors still stand: never a crash here.
    // The terminal's ctrl-c reaches ffmpeg too: its exit may come before the request is seen here.
    if (error instanceof ToolError && error.signalled && !stopped.aborted) await sleep(2 * SAME_REQUEST_MS)
    if (stopped.aborted) return interrupted()
    warn(`${(error as Error).message}; aligned on the anchors.`)
    return null
  }
}

/**
 * --events with several devices: each other device is aligned on its own hearing of the clicks (its
 * offset, and its rate against the video the first device's events retimed: its fitted slope). The first
 * device's correction holds its own start's error too, which another device's start does not share:
 * moving the others by it put a device with a right stamp beside one 0.4 s early 400 ms off. With no
 * verdict of its own (null here) a device keeps its own anchors' offset, and a line says so.
 */
async function othersOnEvents(
  audio: AudioFacts,
  videoFile: string,
  v: { finalized: boolean; durationS: number | null },
  firstAnchors: { offsetS: number; itsscale: number | null; videoUncertaintyS: number | null },
  f: Finishing,
  stopped: AbortSignal,
  notes: Note[],
): Promise<(ReturnType<typeof alignOnEvents> | null)[]> {
  const videoStartEpochS = audio.startEpochS - firstAnchors.offsetS
  const verdicts: (ReturnType<typeof alignOnEvents> | null)[] = []
  for (const other of audio.others) {
    const own: Note[] = []
    const anchors = { ...firstAnchors, offsetS: other.startEpochS - videoStartEpochS }
    const found = await eventsFor(videoFile, v, other, anchors, f, stopped, own)
    const label = `Events, ${JSON.stringify(other.device ?? path.basename(other.file))}:`
    const labelled = (text: string) => text.replace('Events:', label)
    for (const n of own) notes.push({ ...n, text: labelled(n.text), ...(n.short ? { short: labelled(n.short) } : {}) })
    const consistent = found?.fit.consistent ?? false
    verdicts.push(consistent ? found : null)
    if (!consistent)
      notes.push({ kind: 'warning', text: `⚠ ${label} no verdict of its own: placed by its own anchors, unmoved.` })
  }
  return verdicts
}

/** The working folder's calibration file for a video: beside its feed's folder. */
function calibrationFileFor(videoFile: string): string {
  return path.join(path.dirname(path.dirname(path.resolve(videoFile))), CALIBRATION_FILE)
}

/** The calibration file: nothing kept when it is not there; problem, when it cannot be read (then never written). */
function readCalibration(file: string): { calibration: Calibration | null; problem: string | null } {
  if (!fs.existsSync(file)) return { calibration: { about: CALIBRATION_ABOUT, cameras: [] }, problem: null }
  // Regular files only, bounded: a FIFO of that name must never block a stop.
  const text = readRegular(file, CALIBRATION_MAX_BYTES)
  if (text == null) return { calibration: null, problem: 'it is not a regular file one can read' }
  try {
    return { calibration: parseCalibration(text), problem: null }
  } catch (error) {
    return { calibration: null, problem: (error as Error).message }
  }
}

/** The camera a video's latency belongs to; null when its mode is unknown (a video not finished, no ffprobe). */
function cameraKeyOf(videoFile: string, video: VideoFacts, device: string | null, anchor: VideoTiming['source']) {
  if (!video.mode) return null
  const feedId = path.basename(path.dirname(path.resolve(videoFile)))
  return { feedId, audioDevice: device ?? 'default', videoMode: video.mode, anchor } satisfies CameraKey
}

/** What is kept for this video's camera, and what it gets: the flag's, the kept one's, or none. */
function latencyFor(
  videoFile: string,
  video: VideoFacts,
  device: string | null,
  anchor: VideoTiming['source'],
  f: Finishing,
) {
  const file = calibrationFileFor(videoFile)
  const key = cameraKeyOf(videoFile, video, device, anchor)
  const read = readCalibration(file)
  const entry = key ? read.calibration?.cameras.find((c) => sameCamera(c, key)) : undefined
  const kept = keptLatency(entry?.measurements ?? [])
  const latency = chooseCameraLatency({ flagS: f.cameraLatencyS, calibration: f.calibration, kept })
  const others = (read.calibration?.cameras ?? [])
    .filter((c) => key && c.feedId === key.feedId && c.audioDevice === key.audioDevice && !sameCamera(c, key))
    .map((c) => c.videoMode)
  return { file, key, calibration: read.calibration, problem: read.problem, kept, latency, others }
}

/**
 * --events with a verdict: the camera's latency measured, said, and kept in the calibration file (never
 * over one that could not be read); the recording's latency is then this measurement.
 */
function keepLatency(
  clues: Clues,
  aligned: ReturnType<typeof alignOnEvents> | null,
  audio: AudioFacts,
  videoUncertaintyS: number,
) {
  const { camera } = clues
  const fit = aligned?.fit
  const tie = fit?.notes.some((note) => note.kind === 'tie-broken-by-anchors')
  const measured =
    fit?.consistent && !tie ? measuredLatency(camera.latency.latencyS, fit, audio.clockRatio, new Date()) : null
  const anchorUncertaintyS = (audio.startUncertaintyS ?? 0) + videoUncertaintyS
  const m = measured && { ...measured, video: path.basename(clues.video.file), anchorUncertaintyS }
  // A tie the anchors broke rests on them: no measurement, and said, or the advice to use --events reads as unheard.
  const tieNote: Note = {
    kind: 'plain',
    text:
      "  Camera latency not measured: the anchors chose among the events' offsets (a regular train);" +
      ' flash at irregular gaps.',
  }
  if (!m) return { latency: camera.latency, measured: null, notes: fit?.consistent && tie ? [tieNote] : [] }
  const latency: CameraLatency = { latencyS: m.medianS, uncertaintyS: m.spreadS / 2, source: 'events', sessions: 1 }
  const periodS = 1 / (clues.video.nominalFps ?? 30)
  const shown = shownPath(camera.file, process.cwd())
  const said = { file: shown, keptBefore: camera.kept, movedS: null, keptAfter: null, notKept: null }
  // A frame is never stamped before it is taken: further below 0 than the audio's ± and a frame, it is the audio.
  const belowS = -((audio.startUncertaintyS ?? 0) + periodS)
  const notKept = !camera.key
    ? "the video's mode is unknown (ffprobe)"
    : !camera.calibration
      ? 'the calibration file could not be read'
      : m.medianS < belowS
        ? "below 0: the audio's start is off, not the camera"
        : m.medianS > MAX_CAMERA_LATENCY_S
          ? `over ${MAX_CAMERA_LATENCY_S} s, no camera's: the anchors are off (a --clock-offset or --video-start?)`
          : null
  if (notKept || !camera.key || !camera.calibration)
    return { latency, measured: m, notes: [measuredLatencyNote(m, { ...said, notKept: notKept ?? '' })] }
  const next = withMeasurement(camera.calibration, camera.key, m)
  try {
    const partial = `${camera.file}.${process.pid}.partial`
    fs.writeFileSync(partial, `${JSON.stringify(next, null, 2)}\n`)
    fs.renameSync(partial, camera.file)
  } catch (error) {
    const why = `${shown} could not be written (${(error as NodeJS.ErrnoException).code})`
    return { latency, measured: m, notes: [measuredLatencyNote(m, { ...said, notKept: why })] }
  }
  const keptAfter = keptLatency(next.cameras.find((c) => sameCamera(c, camera.key as CameraKey))?.measurements ?? [])
  const keptBefore = camera.calibration.cameras.find((c) => sameCamera(c, camera.key as CameraKey))?.measurements
  // Moved: apart by more than the kept spreads and a frame (the anchors' ± would hide a camera that changed).
  const movedS = latencyMoved(keptLatency(keptBefore ?? [], false), m, periodS)
  return { latency, measured: m, notes: [measuredLatencyNote(m, { ...said, movedS, keptAfter })] }
}

/** What the files say of a video's timing: its facts, the anchors' verdict, and its tracking CSV's clock. */
async function videoClues(videoFile: string, f: Finishing, notes: Note[], device: string | null = null) {
  const video = await videoFacts(videoFile, f.ffprobe)
  const timesyncFile = timesyncFileFor(f.timesyncFile, f.feedDir, videoFile) as string
  const timesync = await readTimesync(timesyncFile).catch((error) => {
    // never at the cost of the rest
    notes.push({ kind: 'warning', text: `⚠ ${(error as Error).message}: the timesync file is not used.` })
    return null
  })
  if (!timesync && f.timesyncExpected)
    notes.push({ kind: 'warning', text: `⚠ The timesync file ${timesyncFile} was expected but is not there.` })
  const tracked =
    video.frames && video.nominalFps
      ? trackedClock(videoFile, video.frames, video.nominalFps, f.watchedCsv, f.stopCsvEpochs)
      : null
  const clues: VideoClues = {
    ulidEpochS: video.ulidEpochS,
    userStartEpochS: f.videoStartEpochS,
    timesync,
    clockOffsetS: f.clockOffsetS,
    frames: video.frames,
    nominalFps: video.nominalFps,
    mtimeEpochS: video.finalized ? video.mtimeEpochS : null,
    driftFix: f.driftFix,
    frameClock: tracked?.clock ?? null,
    frameClockRefused: tracked?.refused ?? null,
  }
  // The latency is kept per anchor (it is what the anchor misses): which one, before it is taken off.
  const camera = latencyFor(videoFile, video, device, videoTiming(clues).source, f)
  if (camera.problem) {
    const shown = shownPath(camera.file, process.cwd())
    notes.push({
      kind: 'warning',
      key: 'calibration-unreadable',
      text:
        `⚠ ${shown}: ${camera.problem}; its camera latencies are not used, nor is it written.` +
        ` Fix it by hand, or move it away (a new one is started).`,
      short: `⚠ ${shown}: ${camera.problem}; not used nor written: fix it, or move it away.`,
    })
  }
  const timing = videoTiming({ ...clues, cameraLatencyS: camera.latency.latencyS })
  return { video, timing, tracked, timesyncFile, camera }
}

type Clues = Awaited<ReturnType<typeof videoClues>>

/** The audio and the video must overlap in time: else the offset is another trial's (NoOverlap, said by finish). */
function checkOverlap(audio: AudioFacts, videoFile: string, { video, timing }: Clues, clockOffsetS: number): void {
  const apart = noOverlapLine(
    { startEpochS: audio.startEpochS, endEpochS: audio.startEpochS + (audio.durationS ?? 0) / audio.clockRatio },
    {
      file: videoFile,
      startEpochS: timing.startEpochS,
      // without a frame count, finished: to its mtime (the last frame); still being written: to now
      endEpochS:
        timing.nominalDurationS != null
          ? timing.startEpochS + (timing.realSpanS ?? timing.nominalDurationS)
          : video.finalized
            ? video.mtimeEpochS + clockOffsetS
            : Date.now() / 1000,
    },
  )
  if (apart) throw new NoOverlap(apart)
}

/** The events' verdict for the first device and, with several, each other's own (null: none of its own). */
type Aligned = ReturnType<typeof alignOnEvents> & { own?: (ReturnType<typeof alignOnEvents> | null)[] }

/** Measures the offset to the video and builds the command; tells the summary what it found. */
async function syncToVideo(
  audio: AudioFacts,
  videoFile: string | null,
  f: Finishing,
  stopped: AbortSignal,
): Promise<VideoSync> {
  if (!videoFile) {
    const kept = audio.others.length ? 'the WAVs are kept' : 'the WAV is kept'
    const where = `${shownPath(f.feedDir ?? '', process.cwd())}${path.sep}`
    if (f.feedDir)
      f.summary.tell([{ kind: 'warning', text: `⚠ No TracktorLive recording (<ULID>.mp4) in ${where}: ${kept}.` }])
    return NO_VIDEO
  }
  const notes: Note[] = []
  const clues = await videoClues(videoFile, f, notes, audio.device)
  checkOverlap(audio, videoFile, clues, f.clockOffsetS)
  const { timing } = clues
  const anchors = {
    offsetS: audio.startEpochS - timing.startEpochS,
    itsscale: timing.itsscale,
    videoUncertaintyS: timing.uncertaintyS,
  }
  const eventNotes: Note[] = []
  let aligned: Aligned | null = null
  if (f.events) {
    const durationS = timing.nominalDurationS == null ? null : timing.nominalDurationS * (anchors.itsscale ?? 1)
    const v = { finalized: clues.video.finalized, durationS }
    aligned = await eventsFor(videoFile, v, audio, anchors, f, stopped, eventNotes)
    if (aligned?.fit.consistent && audio.others.length) {
      const itsscale = aligned.itsscale
      const own = await othersOnEvents(audio, videoFile, v, { ...anchors, itsscale }, f, stopped, eventNotes)
      aligned = { ...aligned, own }
    }
  }
  const kept = keepLatency(clues, aligned, audio, anchors.videoUncertaintyS ?? 0)
  eventNotes.push(...kept.notes)
  const codec = muxCodecFor([audio, ...audio.others])
  const result = videoSyncOf(audio, videoFile, clues, aligned, codec, f, kept)
  const codecLine = codec.why
    ? `  ${codec.why}: the muxed file is Matroska (.mkv) with ${CODEC_NAMES[codec.codec]} audio, every sample kept.`
    : null
  const context: VideoContext = {
    cwd: process.cwd(),
    audioCheck: audio.startCheck,
    audioUncertaintyS: audio.startUncertaintyS,
    devices: audio.others.length ? [audio, ...audio.others].map((a) => a.device ?? path.basename(a.file)) : [],
    csvNote: clues.tracked?.note ?? null,
    csvEpochUncertaintyS: timing.clock?.epoch.uncertaintyS ?? null,
    cameraLatencyS: kept.latency.latencyS,
    latencyNotes: latencyNotes(kept.latency, {
      file: shownPath(clues.camera.file, process.cwd()),
      mode: clues.video.mode,
      others: clues.camera.others,
    }),
    codecLine,
    eventsAsked: f.events,
    eventNotes,
    audioDoubtful: audio.startDoubtful,
    movedFromStopS: movedFromStop(result, f),
    neighbours: recordingFiles(path.dirname(videoFile)),
    otherAudios: audio.others,
  }
  if (context.movedFromStopS != null) f.movedFromStop?.push(result.videoFile as string)
  f.summary.tell([...notes, ...videoNotes(result, context)])
  return result
}

/** mux later: how far this video's offset moved from the stop's (same timing, the video finished then). */
function movedFromStop(v: VideoSync, f: Finishing): number | null {
  const atStop = f.stopOffsets?.get(v.videoFile as string)
  // Another anchor now (a CSV's epoch refused, a timesync file gone) is a move its own notes explain.
  if (atStop === undefined || v.offsetS == null || atStop.source !== v.videoStartSource) return null
  // A camera latency measured or kept since is a move it explains (its own line says it).
  if ((atStop.cameraLatencyS ?? 0) !== (v.cameraLatencyS ?? 0)) return null
  return Math.abs(v.offsetS - atStop.offsetS) > 0.001 ? v.offsetS - atStop.offsetS : null
}

/** The record's facts of a video's timing: its anchor, its real span and drift, its frame clock, the doubts. */
function videoTimingFields({ video, timing, tracked, timesyncFile }: Clues, videoFile: string) {
  return {
    videoFile: path.resolve(videoFile),
    videoStartEpochS: timing.startEpochS,
    videoStartSource: timing.source,
    videoStartUncertaintyS: timing.uncertaintyS,
    videoFinalized: video.finalized,
    videoFrames: video.frames,
    videoNominalFps: video.nominalFps,
    videoRealSpanS: timing.realSpanS,
    videoSpanSource: timing.spanSource,
    timesyncFile: timing.source === 'timesync' || timing.spanSource === 'timesync' ? path.resolve(timesyncFile) : null,
    driftPpm: timing.driftPpm,
    driftAtEndMs: timing.driftAtEndMs,
    driftReason: timing.driftReason,
    trackingCsvFile: tracked?.clock ? tracked.file : null,
    trackingCsvEpochSource: tracked?.clock?.epoch.source ?? null,
    trackingCsvEpochS: tracked?.clock?.epoch.tInitEpochS ?? null,
    trackingCsvNote: tracked?.epochNote ?? null,
    cameraFps: timing.clock?.fps ?? null,
    bufferedFrames: timing.clock?.bufferedFrames ?? null,
    firstReadLateS: timing.clock?.firstReadLateS ?? null,
    offLineFrames: timing.clock?.offLineFrames ?? null,
    anchorWarnings: timing.warnings,
  } satisfies Partial<VideoSync>
}

/**
 * The record's part for one video: the offset (the events', when they were used), the other devices'
 * placements, the mux plan, what the audio covers, and every fact the timing came from.
 */
function videoSyncOf(
  audio: AudioFacts,
  videoFile: string,
  clues: Clues,
  aligned: Aligned | null,
  codec: MuxCodec,
  f: Finishing,
  camera: { latency: CameraLatency; measured: LatencyMeasurement | null },
): VideoSync {
  const { timing } = clues
  const anchorOffsetS = audio.startEpochS - timing.startEpochS
  const offsetS = aligned?.offsetS ?? anchorOffsetS
  const itsscale = aligned ? aligned.itsscale : timing.itsscale
  const videoDurationS = timing.nominalDurationS == null ? null : timing.nominalDurationS * (itsscale ?? 1)
  const eventsUsed = aligned?.fit.consistent && camera.latency.source === 'events'
  const offsetBoundsS = offsetBounds({
    offsetS,
    eventsSpreadS: eventsUsed ? (aligned?.fit.spreadS ?? 0) : null,
    audioUncertaintyS: audio.startUncertaintyS,
    videoUncertaintyS: timing.uncertaintyS,
    cardClockS: audio.clockErrorPpm * 1e-6 * (videoDurationS ?? 0),
    latency: camera.latency,
    framePeriodS: clues.video.nominalFps ? 1 / clues.video.nominalFps : null,
    anchorsApartS: timing.anchorsApartS,
    bufferedStartS: timing.source === 'ulid' ? ULID_BUFFERED_MAX_S : 0,
    driftLeftS: driftLeftS(timing),
  })
  // The other devices, each by its own first sample or, with --events, by its own clicks (its offset, and
  // its fitted slope against the retimed video: its clock, played at that rate); with no verdict of its
  // own, by its own first sample: the first device's correction holds that device's start's error.
  const more = audio.others.map((other, k) => ({
    audioFile: path.resolve(other.file),
    sampleRate: other.sampleRate,
    channels: other.channels,
    offsetS: aligned?.own?.[k]?.offsetS ?? other.startEpochS - timing.startEpochS,
    title: other.device ?? '',
    clockRatio: other.clockRatio * (1 + (aligned?.own?.[k]?.fit.slope ?? 0)),
  }))
  // Each other device's own bounds: its own events' spread, else its own start's and the video's terms.
  const moreBoundsS = more.map((m, k) => {
    const own = aligned?.own?.[k] ?? null
    const ownTie = own?.fit.notes.some((note) => note.kind === 'tie-broken-by-anchors')
    return offsetBounds({
      offsetS: m.offsetS,
      eventsSpreadS: own && !ownTie ? (own.fit.spreadS ?? 0) : null,
      audioUncertaintyS: audio.others[k].startUncertaintyS,
      videoUncertaintyS: timing.uncertaintyS,
      cardClockS: audio.others[k].clockErrorPpm * 1e-6 * (videoDurationS ?? 0),
      latency: camera.latency,
      framePeriodS: clues.video.nominalFps ? 1 / clues.video.nominalFps : null,
      anchorsApartS: timing.anchorsApartS,
      bufferedStartS: timing.source === 'ulid' ? ULID_BUFFERED_MAX_S : 0,
      driftLeftS: driftLeftS(timing),
    })
  })
  const wantedMuxed = muxedNameFor(f.muxedFile ?? muxedFileFor(videoFile, f.muxedSuffix), codec)
  const muxedFile = path.resolve(f.muxedFile ? wantedMuxed : freeName(wantedMuxed, fs.existsSync))
  // Absolute paths: the command must work when pasted into a terminal in another folder.
  const plan = muxPlan({
    audioFile: path.resolve(audio.file),
    videoFile: path.resolve(videoFile),
    muxedFile,
    sampleRate: audio.sampleRate,
    channels: audio.channels,
    offsetS,
    videoDurationS,
    itsscale,
    clockRatio: audio.clockRatio,
    title: audio.device ?? '',
    more,
  })
  const cover =
    videoDurationS == null || audio.durationS == null
      ? null
      : audioCoverage(offsetS, audio.durationS / audio.clockRatio, videoDurationS)
  return {
    ...videoTimingFields(clues, videoFile),
    videoDurationS,
    itsscale,
    events: aligned?.summary ?? null,
    offsetS,
    offsetBoundsS,
    cameraLatencyS: camera.latency.latencyS,
    cameraLatencyUncertaintyS: camera.latency.uncertaintyS,
    cameraLatencySource: camera.latency.source,
    cameraLatencyMeasured: camera.measured,
    delaySamples: plan.delaySamples,
    trimSamples: plan.trimSamples,
    silenceBeforeS: cover?.silenceBeforeS ?? null,
    silenceAfterS: cover?.silenceAfterS ?? null,
    audioPlacements: more.length
      ? [{ audioFile: path.resolve(audio.file), offsetS }, ...more].map((a, k) => {
          const { delaySamples, trimSamples } = [plan, ...plan.more][k]
          const speed = k ? plan.more[k - 1].speed : null
          const bounds = k ? moreBoundsS[k - 1] : offsetBoundsS
          const events = k ? (aligned?.own?.[k - 1]?.summary ?? null) : null // the first's: the record's events
          return {
            audioFile: a.audioFile,
            offsetS: a.offsetS,
            delaySamples,
            trimSamples,
            speed,
            offsetBoundsS: bounds,
            events,
          }
        })
      : null,
    muxedFile,
    muxArgs: [f.ffmpeg, ...plan.args],
    muxCommand: formatCommand(f.ffmpeg, plan.args, process.platform),
  }
}

async function plot(sync: SyncRecord, plotFile: string): Promise<void> {
  if (sync.videoStartEpochS == null || !sync.muxArgs)
    return say('⚠ No plot: there is no video to draw the audio against.')
  if (fs.existsSync(plotFile)) return say(`⚠ No plot: ${plotFile} exists and is never overwritten.`)
  const { args } = plotArgs({
    audioFile: sync.audioFile,
    plotFile: path.resolve(plotFile),
    audioStartEpochS: sync.audioStartEpochS as number,
    audioDurationS: sync.audioDurationS ?? 0,
    videoStartEpochS: sync.videoStartEpochS,
    videoDurationS: sync.videoDurationS ?? sync.videoRealSpanS ?? sync.audioDurationS ?? 0,
  })
  const drawn = await runHelper(sync.muxArgs[0], args)
  say(
    drawn.exitCode === 0
      ? `✔ Plot: ${plotFile} (waveform above the video's span; red: first frame, green: first sample)`
      : `⚠ No plot: ${ffmpegErrorLine(drawn.stderr)}`,
  )
}

/**
 * The end of every run: the command (or, with --json, the record) on stdout, and --mux's mux; with
 * --all-videos, one of each per video (a failed mux does not stop the next), then a table.
 */
async function deliver(sync: SyncRecord, f: Finishing, stops: StopRequests): Promise<number> {
  if (f.plotFile && sync.muxArgs) await plot(sync, f.plotFile)
  if (f.json) process.stdout.write(`${JSON.stringify(sync, null, 2)}\n`)
  const videos = (sync.videos ?? [sync]).filter((v) => v.muxCommand)
  if (!videos.length) return 0
  if (!f.json) {
    say(f.mux ? `The mux command${videos.length > 1 ? 's' : ''}:` : 'Mux with:')
    for (const v of videos) process.stdout.write(`${v.muxCommand}\n`)
  }
  for (const v of videos) sayUnfinishedMuxes(v.videoFile as string, v.muxedFile as string)
  const requestsBefore = stops.count // runMux takes the requests over: one during a mux stops the rest too
  let exitCode = 0
  const made: string[] = []
  for (const v of videos) {
    if (!f.mux) made.push('command printed')
    else if (stops.count > requestsBefore) made.push('not muxed: stopped')
    else if (!v.videoFinalized) {
      say(`✖ Not muxed: ${v.videoFile} was not finished in time. Run its command above once it is.`)
      made.push('not muxed: video unfinished')
      exitCode = 1
    } else {
      const muxed = await runMux({ ...sync, ...v }, f.ffprobe, stops)
      made.push(muxed === 0 ? 'muxed (above)' : 'mux failed')
      exitCode = Math.max(exitCode, muxed)
    }
  }
  if (sync.videos) {
    say(`${sync.videos.length} video${sync.videos.length === 1 ? '' : 's'} with this audio:`)
    const rows = videos.map((v, i) => ({
      video: shortVideoName(v.videoFile as string, process.cwd(), recordingFiles(path.dirname(v.videoFile ?? ''))),
      offsetS: v.offsetS,
      anchor: v.videoStartSource && ANCHOR_NAMES[v.videoStartSource],
      coveredS: v.videoDurationS == null ? null : v.videoDurationS - (v.silenceBeforeS ?? 0) - (v.silenceAfterS ?? 0),
      videoDurationS: v.videoDurationS,
      made: made[i],
    }))
    for (const line of videoTable(rows)) say(line)
  }
  return exitCode
}

/**
 * A mux a killed run left beside the video (its .partial- name, its PID gone) named, so that no one takes it
 * for a finished file; never deleted: only the run that made it knows it is whole garbage.
 */
function sayUnfinishedMuxes(videoFile: string, muxedFile: string): void {
  const dir = path.dirname(muxedFile)
  let names: string[]
  try {
    names = fs.readdirSync(dir)
  } catch {
    return // the mux says what is wrong with the folder
  }
  const alive = (pid: number) => {
    try {
      process.kill(pid, 0)
      return true
    } catch (error) {
      return (error as NodeJS.ErrnoException).code === 'EPERM'
    }
  }
  const stem = path.basename(videoFile).replace(/\.mp4$/i, '')
  for (const { name, pid } of unfinishedMuxes(names, stem))
    if (pid !== process.pid && !alive(pid))
      say(
        `⚠ ${shownPath(path.join(dir, name), process.cwd())} is an unfinished mux left by a killed run (PID ${pid}),` +
          ' not a finished file: delete it when you like.',
      )
}

const SPINNER = '⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏'
const TIMESYNC_WAIT_S = 15 // TracktorLive's stop hooks write it after the video: a pandas import and a write

/**
 * --mux: wait until the mp4 has its moov box and its size holds still, then, when the feed had a
 * timesync file, until it is rewritten after the video (a stop hook writes it); a stop request
 * ends the waiting.
 */
async function waitForVideo(videoFile: string, f: Finishing, interrupted: () => boolean): Promise<void> {
  if (!fs.existsSync(videoFile)) return
  const tty = process.stderr.isTTY
  const waitUntil = async (done: () => boolean, waitS: number, what: string) => {
    const deadline = Date.now() + waitS * 1000
    if (!tty) say(`  Waiting up to ${waitS} s for ${what} (ctrl-c stops waiting)…`)
    try {
      for (let tick = 0; !interrupted() && Date.now() < deadline; tick++) {
        if (done()) return true
        if (tty) {
          const left = Math.round((deadline - Date.now()) / 1000)
          process.stderr.write(
            `\r${SPINNER[tick % SPINNER.length]} Waiting for ${what} (${left} s left, ctrl-c stops waiting)\x1b[K`,
          )
        }
        await sleep(250)
      }
      return done()
    } finally {
      if (tty) process.stderr.write('\r\x1b[K')
    }
  }
  let lastBytes = -1
  const finished = () => {
    refuseNotVideo(videoFile) // a text or empty file is said at once, not waited on as unfinished
    const bytes = fileBytes(videoFile)
    const still = bytes === lastBytes
    lastBytes = bytes
    return still && isFinalizedMp4(videoFile)
  }
  finished()
  await sleep(300)
  if (!finished() && !(await waitUntil(finished, f.waitS, `TracktorLive to finish ${path.basename(videoFile)}`))) return
  const timesyncFile = timesyncFileFor(f.timesyncFile, f.feedDir, videoFile)
  if (!f.timesyncExpected || timesyncFile == null || f.videoStartEpochS != null) return
  const videoMtimeMs = fs.statSync(videoFile).mtimeMs
  let lastTimesyncBytes = -1
  const rewritten = () => {
    let stat: fs.Stats
    try {
      stat = fs.statSync(timesyncFile)
    } catch {
      return false
    }
    const still = stat.size === lastTimesyncBytes
    lastTimesyncBytes = stat.size
    return still && stat.mtimeMs >= videoMtimeMs - 5
  }
  if (!(await waitUntil(rewritten, TIMESYNC_WAIT_S, `the timesync file ${path.basename(timesyncFile)}`)))
    say(`⚠ ${timesyncFile} was not rewritten within ${TIMESYNC_WAIT_S} s of the video's end: it may be another run's.`)
}

const PROBED_ENTRIES = 'stream=codec_type,codec_name,sample_rate,nb_read_packets,duration'

/** ffprobe's view of a file's streams. */
/** A file's streams by ffprobe; a failed or timed-out probe is its one-line reason, never an empty list. */
async function probeStreams(ffprobe: string, file: string): Promise<Array<Record<string, string>> | string> {
  // Packets are counted (no decoding), since Matroska states no frame count.
  const probe = await runHelper(ffprobe, [
    '-v',
    'error',
    '-count_packets',
    '-show_entries',
    PROBED_ENTRIES,
    '-of',
    'json',
    file,
  ])
  if (probe.exitCode !== 0)
    return `ffprobe could not read ${path.basename(file)}: ${
      probe.signal ? `ended after ${HELPER_TIMEOUT_MS / 1000} s` : ffmpegErrorLine(probe.stderr)
    }`
  try {
    return JSON.parse(probe.stdout).streams ?? []
  } catch {
    return `ffprobe gave no streams for ${path.basename(file)}`
  }
}

/**
 * Gives the checked temporary file its final name without ever replacing a file: a hard link where
 * the disk has them, else (exFAT, FAT, some SMB shares) an exclusive create, then a rename onto
 * that empty file of our own.
 */
export function publish(partial: string, finalFile: string, link = fs.linkSync): void {
  try {
    link(partial, finalFile)
    fs.rmSync(partial)
    return
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') throw error
  }
  fs.closeSync(fs.openSync(finalFile, 'wx'))
  fs.renameSync(partial, finalFile)
}

/**
 * --mux: the printed command, writing to a temporary name beside the target, with a progress bar;
 * then ffprobe checks it (video copied frame for frame, audio present, same length within an audio
 * frame) before it takes the final name. A failed or stopped mux leaves nothing behind.
 */
async function runMux(sync: SyncRecord, ffprobe: string | null, stops: StopRequests): Promise<number> {
  const [ffmpeg, ...args] = sync.muxArgs as string[]
  const original = ffprobe ? await probeStreams(ffprobe, sync.videoFile as string) : []
  if (typeof original === 'string') {
    say(`✖ Not muxed: ${original}. The audio and its timing are kept.`)
    return 1
  }
  const frames = Number(original.find((x) => x.codec_type === 'video')?.nb_read_packets ?? 0)
  if (ffprobe && !(frames > 0)) {
    // An mp4 finished before its first frame (a moov and nothing in it): ffmpeg's own words would be about -map.
    say(`✖ Not muxed: ${sync.videoFile} holds no video frames (no video stream in it): nothing to put the audio on.`)
    say("  Give the recording's mp4 with its frames (--video); the audio and its timing are kept.")
    return 1
  }
  const finalFile = sync.muxedFile as string
  const ext = path.extname(finalFile)
  const partial = `${finalFile.slice(0, -ext.length)}.partial-${process.pid}${ext}`
  const partialArgs = [...args.slice(0, -1), '-nostats', '-progress', 'pipe:1', partial]
  const totalUs = (sync.videoDurationS ?? 0) * 1e6
  const tty = process.stderr.isTTY
  const setpriv = process.platform === 'linux' ? await which('setpriv', { nothrow: true }) : null
  const mux = $({ nothrow: true, quiet: true })`${muxLauncher(setpriv)} ${ffmpeg} ${partialArgs}`
  mux.stdout.on('data', (chunk: Buffer) => {
    const outUs = Number(/out_time_us=(\d+)/.exec(chunk.toString())?.[1])
    if (tty && totalUs > 0 && Number.isFinite(outUs)) {
      const done = Math.min(1, outUs / totalUs)
      const bar = '#'.repeat(Math.round(done * 30)).padEnd(30)
      process.stderr.write(`\r  Muxing [${bar}] ${(done * 100).toFixed(0).padStart(3)} %\x1b[K`)
    }
  })
  let interrupted = false
  stops.onRequest(() => {
    interrupted = true
    void mux.kill('SIGINT')
  })
  const result = await mux
  if (tty) process.stderr.write('\r\x1b[K')
  const fail = (why: string) => {
    fs.rmSync(partial, { force: true })
    say(`✖ Mux failed: ${why}. Nothing was written; the recording and the video are untouched.`)
    return 1
  }
  if (interrupted) return fail('stopped')
  if (result.exitCode !== 0) return fail(notFfmpegReason(ffmpeg) ?? ffmpegErrorLine(result.stderr))
  if (ffprobe) {
    const muxed = await probeStreams(ffprobe, partial)
    if (typeof muxed === 'string') return fail(`${muxed}, so it cannot be checked`)
    const video = muxed.find((x) => x.codec_type === 'video')
    const audios = muxed.filter((x) => x.codec_type === 'audio')
    const source = original.find((x) => x.codec_type === 'video')
    const wanted = sync.audioPlacements?.length ?? 1
    if (!video || audios.length !== wanted)
      return fail(`the result has ${video ? 1 : 0} video and ${audios.length} audio streams, not 1 and ${wanted}`)
    if (source && (video.codec_name !== source.codec_name || video.nb_read_packets !== source.nb_read_packets))
      return fail(`the video was not copied whole (${video.nb_read_packets} frames of ${source.nb_read_packets})`)
    const videoS = Number(video.duration)
    for (const audio of audios) {
      // One packet: how far an audio stream may end from the video's end.
      const frameSamples = FRAME_SAMPLES[audio.codec_name as MuxCodec['codec']] ?? FRAME_SAMPLES.flac
      const audioFrameS = frameSamples / Number(audio.sample_rate || sync.audioSampleRate)
      const audioS = Number(audio.duration)
      if (videoS > 0 && audioS > 0 && Math.abs(videoS - audioS) > audioFrameS + 1e-3)
        return fail(`audio ${audio.duration} s against video ${video.duration} s`)
    }
  }
  if (interrupted) return fail('stopped')
  try {
    publish(partial, finalFile)
  } catch (error) {
    return fail(`${finalFile} could not be created (${(error as NodeJS.ErrnoException).code})`)
  }
  const { codec } = muxCodec(sync.audioSampleRate, sync.audioChannels)
  say(
    `✔ Muxed: ${shownPath(finalFile, process.cwd())} (video copied, ${sync.videoFrames ?? '?'} frames;` +
      ` audio ${CODEC_NAMES[codec]}, in sync)`,
  )
  return 0
}

/**
 * The videos a recording was synced to (all of them with --all-videos, else the newest), never what
 * is newest in the feed now (the next trial's); undefined: none was found then, so look now.
 */
function recordedVideos(sync: SyncRecord, allVideos: boolean): string[] | undefined {
  if (allVideos && !sync.videos) return undefined // recorded with one video: --all-videos now looks for them all
  const files = allVideos ? (sync.videos ?? []).map((v) => v.videoFile) : [sync.videoFile]
  const own = files.filter((file): file is string => file != null)
  if (!own.length) return undefined
  const gone = own.find((file) => !fs.existsSync(file))
  if (gone)
    throw new UsageError(
      `the recording's video ${gone} is not there any more: put it back, or give another with --video`,
    )
  say(`  The recording's own video${own.length > 1 ? 's' : ''} (give another with --video): ${own.join(', ')}`)
  return own
}

const SYNC_READ_MAX_BYTES = 1 << 26 // a sync file is kilobytes; a bigger one is not ours

/**
 * A WAV whose header says another length (or channel count) than its record: the record is another
 * recording's, or the WAV was cut or grown since. Only where the record has the length (a killed run has none).
 */
function wavLengthProblem(sync: SyncRecord): string | null {
  const parts = [{ part: sync, field: '' }, ...(sync.audios ?? []).map((part, k) => ({ part, field: `audios[${k}].` }))]
  for (const { part, field } of parts) {
    const header = part.audioStartEpochS == null ? null : readWavInfo(part.audioFile)
    if (!header) continue
    const channels = part.audioChannels ?? sync.audioChannels
    if (header.channels !== channels)
      return `${field}audioChannels ${channels} is not ${part.audioFile}'s ${header.channels}`
    const wavS = header.dataBytes / (header.channels * (header.bitsPerSample / 8) * header.sampleRate)
    if (part.audioDurationS != null && Math.abs(wavS - part.audioDurationS) > AUDIO_SPAN_TOLERANCE_S)
      return `${field}audioDurationS ${part.audioDurationS} s is not ${part.audioFile}'s ${wavS.toFixed(3)} s`
  }
  return null
}

/** `record-audio mux SYNC_FILE`: the offset again from the sync file alone, and the mux (--print: only the command). */
async function muxLater(m: MuxLater): Promise<number> {
  let text: string
  try {
    const read = readRegular(m.syncFile, SYNC_READ_MAX_BYTES)
    if (read == null)
      throw new UsageError(`${m.syncFile} is not a regular file: give the -sync.json file a recording wrote`)
    text = read
  } catch (error) {
    if (error instanceof UsageError) throw error
    throw new UsageError(
      `cannot read ${m.syncFile} (${(error as NodeJS.ErrnoException).code}):` +
        ' give the -sync.json file a recording wrote',
    )
  }
  let sync: SyncRecord
  try {
    sync = parseSyncRecord(text)
  } catch (error) {
    throw new UsageError(
      `${m.syncFile} is not a record-audio sync file (${(error as Error).message}):` +
        ' give the -sync.json file a recording wrote',
    )
  }
  if (sync.audioStartEpochS == null)
    throw new UsageError(`${m.syncFile} holds no audio start: the recording never got its first sample`)
  const missing = [sync, ...(sync.audios ?? [])]
    .filter((part) => part.audioStartEpochS != null)
    .find((part) => !fs.existsSync(part.audioFile))
  if (missing)
    throw new UsageError(
      `the recording ${missing.audioFile} is not there any more: put it back, or edit audioFile in ${m.syncFile}`,
    )
  const header = readWavInfo(sync.audioFile)
  if (header && header.sampleRate !== sync.audioSampleRate)
    throw new UsageError(
      `${m.syncFile}'s audioSampleRate ${sync.audioSampleRate} is not ${sync.audioFile}'s ${header.sampleRate} Hz:` +
        " give the sync file this WAV's recording wrote",
    )
  const lengthProblem = wavLengthProblem(sync)
  if (lengthProblem)
    throw new UsageError(`${m.syncFile}'s ${lengthProblem}: give the sync file this WAV's recording wrote`)
  checkVideoFile(m.videoFile)
  checkMuxedFile(m.muxedFile)
  checkTimesyncFile(m.given.timesyncFile ?? null)
  const { ffmpeg, ffprobe } = await findTools(m.ffmpeg)
  if (readWavInfo(sync.audioFile)?.finalized === false)
    say(
      `⚠ ${sync.audioFile} has an unfinished header (ffmpeg reads it, other readers may not):` +
        ` record-audio repair ${quotePosix(sync.audioFile)}`,
    )
  // The recording's own timing settings, unless a flag says otherwise now; a video named now is the one.
  const timing: TimingSettings = { ...sync.timing, ...m.given }
  if (m.videoFile != null || m.muxedFile != null) timing.allVideos = false
  const ownVideos = m.videoFile == null ? recordedVideos(sync, timing.allVideos) : undefined
  const f: Finishing = {
    ...m,
    ...timing,
    feedDir: sync.feedDir,
    searchRoot: path.dirname(sync.audioFile),
    ffmpeg,
    ffprobe,
    timesyncExpected: false,
    ownVideos,
    summary: new Summary(m.verbose),
    watchedCsv: new Map(
      (sync.trackingCsvWatched ?? []).map(({ file, ...epoch }) => [file, { ...epoch, source: 'watched' as const }]),
    ),
    stopCsvEpochs: storedCsvEpochs(text),
  }
  // The recording's own (its audio's warnings said again, so a ⚠ below has its reason); the video's are redone.
  f.summary.tell(sync.notes.filter((n) => n.topic === 'audio' && (n.kind === 'warning' || n.kind === 'error')))
  f.summary.notes = sync.notes.filter((n) => n.topic === 'audio')
  // The stop's offsets witness today's, when the timing is the same and the video was finished then.
  const sameTiming = (Object.keys(m.given) as (keyof TimingSettings)[]).every((k) => m.given[k] === sync.timing[k])
  if (sameTiming) Object.assign(f, { stopOffsets: storedOffsets(text), movedFromStop: [] })
  const stops = new StopRequests()
  try {
    return await finish({ ...sync, timing }, null, f, stops)
  } finally {
    stops.dispose()
  }
}

/**
 * Each video's offset in a record: the stop's, a witness for `mux` later's. Only videos finished at
 * the stop: an unfinished one had no frames, so no frame clock, and its offset was the ULID's.
 */
export function storedOffsets(
  text: string,
): Map<string, { offsetS: number; source: string | null; cameraLatencyS: number | null }> {
  const raw = JSON.parse(text) as { videoFile?: unknown; offsetS?: unknown; videos?: unknown }
  const found = new Map<string, { offsetS: number; source: string | null; cameraLatencyS: number | null }>()
  for (const v of [raw, ...(Array.isArray(raw.videos) ? raw.videos : [])])
    if (typeof v?.videoFile === 'string' && typeof v.offsetS === 'number' && v.videoFinalized === true)
      found.set(v.videoFile, {
        offsetS: v.offsetS,
        source: typeof v.videoStartSource === 'string' ? v.videoStartSource : null,
        cameraLatencyS: typeof v.cameraLatencyS === 'number' ? v.cameraLatencyS : null,
      })
  return found
}

/**
 * The tracking CSVs' epochs a record's stop took from their mtime (checked then against the ULIDs and the
 * rows seen), by the CSV's name: mux later's witness when the mtime moves since. A watched epoch is kept
 * in trackingCsvWatched, with the period its checks need.
 */
export function storedCsvEpochs(text: string): Map<string, CsvEpoch> {
  const raw = JSON.parse(text) as { videos?: unknown }
  const found = new Map<string, CsvEpoch>()
  for (const v of [raw, ...(Array.isArray(raw.videos) ? raw.videos : [])] as Record<string, unknown>[])
    if (typeof v?.trackingCsvFile === 'string' && typeof v.trackingCsvEpochS === 'number')
      if (v.trackingCsvEpochSource === 'mtime')
        found.set(path.basename(v.trackingCsvFile), {
          tInitEpochS: v.trackingCsvEpochS,
          source: 'mtime',
          uncertaintyS: MTIME_TICK_S,
        })
  return found
}

/**
 * While recording: reads what ffmpeg appended to the WAV (never touching ffmpeg), and shows the
 * elapsed time, size and level, redrawn on a TTY and as a plain line a minute when piped. Warns
 * once per quiet spell when the input stays below −80 dBFS for 5 s: a muted or wrong microphone.
 */
function startLiveStatus(
  inputs: (AudioInput & { file: string })[],
  stopping: () => boolean,
  onTick: () => void, // rides on the same wake-up
) {
  const tty = Boolean(process.stderr.isTTY)
  const color = tty && !('NO_COLOR' in process.env)
  const startedMs = Date.now()
  let lastPlainMs = startedMs
  // A wake-up is the cost here (about 15 ms of CPU each on a small VM, whatever it does), so a
  // terminal gets one a second and a pipe, which only needs the silence watch, one per 2.5 s.
  const tickMs = tty ? 1000 : 2500
  const watches = inputs.map((input) => ({
    ...input,
    frameBytes: input.channels * 2,
    readFrom: null as number | null,
    silentSinceMs: null as number | null,
    warned: false,
    fd: null as number | null,
    failed: null as string | null,
    failedSaid: false,
    bytes: 0,
    dbfs: Number.NEGATIVE_INFINITY,
    chunk: Buffer.allocUnsafe(Math.ceil((tickMs / 1000) * input.sampleRate) * input.channels * 2), // reused
  }))
  /** The level of what the device added since the last look; false when there is nothing to read yet. */
  const look = (w: (typeof watches)[number]): boolean => {
    const length = readWavTail(w)
    if (w.failed && !w.failedSaid) {
      w.failedSaid = true // once: the next ticks try again, quietly
      say(`⚠ The live status cannot read ${w.file} (${w.failed}): the recording goes on, its level is not shown.`)
    }
    if (length === null) return false
    // Every 47th sample (a prime, so no channel count or steady tone aliases with it): a thousand
    // a second is plenty for a level, and so short a loop never makes V8 compile it over and over.
    w.dbfs = levelDbfs(new Int16Array(w.chunk.buffer, w.chunk.byteOffset, length / 2), 47)
    const now = Date.now()
    if (w.dbfs < SILENCE_DBFS)
      w.silentSinceMs ??= now - (length / w.frameBytes / w.sampleRate) * 1000 // since the window began
    else {
      w.silentSinceMs = null
      w.warned = false
    }
    if (w.silentSinceMs !== null && now - w.silentSinceMs >= SILENCE_WARN_S * 1000 && !w.warned) {
      w.warned = true
      const which = inputs.length > 1 ? `Device ${JSON.stringify(w.device)} has` : 'The input has'
      const warning =
        `⚠ ${which} been silent (below ${SILENCE_DBFS} dBFS) for ${SILENCE_WARN_S} s:` +
        ' is the microphone muted, or the wrong one? (record-audio --list-devices)'
      say(color ? `\x1b[33m${warning}\x1b[0m` : warning)
    }
    return true
  }
  const tick = () => {
    if (stopping()) return
    onTick()
    if (!watches.map(look).some(Boolean)) return
    const now = Date.now()
    const bytes = watches.reduce((sum, w) => sum + w.bytes, 0)
    const levels = watches.map((w) => w.dbfs)
    if (tty) process.stderr.write(`\r${statusLine((now - startedMs) / 1000, bytes, levels, color)}\x1b[K`)
    else if (now - lastPlainMs >= 60000) {
      say(statusLine((now - startedMs) / 1000, bytes, levels, false))
      lastPlainMs = now
    }
  }
  const timer = setInterval(tick, tickMs)
  return {
    stop() {
      clearInterval(timer)
      for (const w of watches)
        if (w.fd !== null)
          try {
            fs.closeSync(w.fd)
          } catch {
            /* a dying disk: the descriptor goes with the process */
          }
      if (tty) process.stderr.write('\r\x1b[K')
    },
  }
}

/** The calls readWavTail makes, so that a test can make one fail as a dying disk would. */
export interface WavReads {
  open(file: string): number
  size(fd: number): number
  read(fd: number, into: Buffer, length: number, position: number): number
  close(fd: number): void
  dataOffset(file: string): number | null
}

const FILE_READS: WavReads = {
  open: (file) => fs.openSync(file, 'r'),
  size: (fd) => fs.fstatSync(fd).size,
  read: (fd, into, length, position) => fs.readSync(fd, into, 0, length, position),
  close: (fd) => fs.closeSync(fd),
  dataOffset: (file) => readWavInfo(file)?.dataOffset ?? null,
}

/** What the live status keeps of one WAV between looks. */
export interface WavTail {
  file: string
  frameBytes: number
  chunk: Buffer // reused; at most this much is read a look
  fd: number | null
  readFrom: number | null
  bytes: number
  failed: string | null // the last look's error, null once a look succeeds
}

/**
 * Reads what ffmpeg appended to the WAV since the last look (at most the chunk, the newest whole
 * frames) into the chunk: its length in bytes, or null when there is nothing new or the file could
 * not be read. A failing disk (EIO) is the live status's problem only, never the recording's: the
 * error is kept in `failed`, the descriptor dropped, and the next look starts afresh.
 */
export function readWavTail(w: WavTail, io: WavReads = FILE_READS): number | null {
  try {
    // One descriptor for the whole recording: a look is an fstat and a read, at most a tick's worth.
    w.fd ??= io.open(w.file)
    w.bytes = io.size(w.fd)
    w.readFrom ??= io.dataOffset(w.file)
    w.failed = null
    if (w.readFrom === null || w.bytes <= w.readFrom) return null
    const from = Math.max(w.readFrom, w.bytes - w.chunk.length)
    const start = from - ((from - w.readFrom) % w.frameBytes)
    const length = Math.floor(Math.min(w.chunk.length, w.bytes - start) / w.frameBytes) * w.frameBytes
    const read = Math.floor(io.read(w.fd, w.chunk, length, start) / w.frameBytes) * w.frameBytes
    w.readFrom = start + read
    return read > 0 ? read : null
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    w.failed = code === 'ENOENT' ? null : (code ?? (error as Error).message) // ENOENT: ffmpeg has not made it yet
    if (w.fd !== null)
      try {
        io.close(w.fd)
      } catch {
        /* the descriptor is gone with the disk */
      }
    w.fd = null
    return null
  }
}

function fileBytes(file: string): number {
  try {
    return fs.statSync(file).size
  } catch {
    return 0
  }
}

function readWavInfo(file: string): WavInfo | null {
  try {
    const fd = openRegular(file)
    if (fd == null) return null
    try {
      const header = Buffer.alloc(4096)
      const read = fs.readSync(fd, header, 0, header.length, 0)
      return parseWavHeader(header.subarray(0, read), fs.fstatSync(fd).size)
    } finally {
      fs.closeSync(fd)
    }
  } catch {
    return null
  }
}

async function listDevices(format: Format, ffmpegSetting: string): Promise<number> {
  const { ffmpeg } = await findTools(ffmpegSetting)
  const out = await runHelper(ffmpeg, listDevicesArgs(format), 20_000) // a stuck device server: ended, said below
  if (format === 'avfoundation') return printThen(out.stderr, 0)
  const devices = parseSources(out.stdout + out.stderr)
  if (!devices.length) {
    say(
      `✖ ffmpeg lists no ${format} devices (${ffmpegErrorLine(out.stderr + out.stdout)}).` +
        ` Try: ${listDevicesHint(format)}`,
    )
    return 1
  }
  for (const d of devices) process.stdout.write(`${d.isDefault ? '*' : ' '} ${d.name}  ${d.description}\n`)
  say(`(${format}; * is the default. Record one with --format ${format} --device <name>)`)
  return 0
}

// A file whose size or mtime moves over this look is being written: repair leaves it alone.
const REPAIR_LOOK_MS = 500
const WRITER_SCAN_MS = 2000 // the bound on reading /proc for a process with the file open to write

/** The processes (Linux: /proc/<pid>/fd and fdinfo, bounded) that have `file` open for writing; null: cannot tell. */
function writersOf(file: string): string[] | null {
  if (process.platform !== 'linux') return null
  const target = fs.realpathSync(file)
  const deadline = Date.now() + WRITER_SCAN_MS
  const writers: string[] = []
  const entries = (dir: string) => {
    try {
      return fs.readdirSync(dir)
    } catch {
      return [] // another user's, or gone: not to be read
    }
  }
  for (const pid of entries('/proc').filter((name) => /^\d+$/.test(name) && Number(name) !== process.pid))
    for (const fd of entries(`/proc/${pid}/fd`)) {
      if (Date.now() > deadline) return writers
      try {
        if (fs.readlinkSync(`/proc/${pid}/fd/${fd}`) !== target) continue
        const flags = Number.parseInt(
          /flags:\s+([0-7]+)/.exec(fs.readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8'))?.[1] ?? '0',
          8,
        )
        if ((flags & 3) !== 0) writers.push(`${fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim()}, PID ${pid}`)
      } catch {
        /* closed or exited meanwhile */
      }
    }
  return writers
}

/** Why `file` may still be being written (a writer in /proc, or its size or mtime moving), or null. */
async function stillWritten(file: string): Promise<string | null> {
  const writers = writersOf(file)
  if (writers?.length) return `another process has it open for writing (${[...new Set(writers)].join('; ')})`
  const before = fs.statSync(file)
  await sleep(REPAIR_LOOK_MS)
  const after = fs.statSync(file)
  if (after.size !== before.size || after.mtimeMs !== before.mtimeMs)
    return `it is still being written (${after.size - before.size} bytes more in ${REPAIR_LOOK_MS / 1000} s)`
  return null
}

/** `record-audio repair FILE.wav`: only the size fields of the header are written, never on a file being written. */
async function repairWav(file: string): Promise<number> {
  if (isRegularFile(file)) {
    const busy = await stillWritten(file)
    if (busy) throw new UsageError(`${file}: ${busy}; nothing was changed: repair it once that has stopped`)
  }
  if (fs.existsSync(file) && !isRegularFile(file))
    throw new UsageError(`${file} is not a regular file: give the path of the WAV to repair`)
  let fd: number
  try {
    fd = fs.openSync(file, 'r+')
  } catch (error) {
    throw new UsageError(
      `cannot open ${file} (${(error as NodeJS.ErrnoException).code}): give the path of the WAV to repair`,
    )
  }
  try {
    const header = Buffer.alloc(4096)
    const read = fs.readSync(fd, header, 0, header.length, 0)
    const fileBytes = fs.fstatSync(fd).size
    let repair: WavRepair | null
    try {
      repair = wavRepair(header.subarray(0, read), fileBytes)
    } catch (error) {
      throw new UsageError(`${file}: ${(error as Error).message}; it was left as it is`)
    }
    if (!repair) return sayThen(`✔ ${file} is already finalized: nothing to repair.`, 0)
    const untouched = repair.dataKept
      ? "only its RIFF size, now the file's: the samples, their size and the chunks after them were not touched"
      : 'the samples were not touched'
    for (const patch of repair.patches) fs.writeSync(fd, patch.bytes, 0, patch.bytes.length, patch.offset)
    fs.fsyncSync(fd)
    const info = parseWavHeader(header.subarray(0, read), fileBytes)
    const seconds = repair.dataBytes / (info.channels * (info.bitsPerSample / 8) * info.sampleRate)
    say(`✔ Repaired ${file}: ${repair.kind} header for ${seconds.toFixed(3)} s of audio (${untouched}).`)
    return 0
  } finally {
    fs.closeSync(fd)
  }
}

// The build, and the copy a lab edits.
const SOURCE_NAME = 'record-audio.mts'

/** This file's source: itself, or for the build the source beside dist/. */
const ownSource = () => {
  const self = fileURLToPath(import.meta.url)
  return self.endsWith('.mts') ? self : path.join(path.dirname(self), '..', SOURCE_NAME)
}

function readIfFile(file: string): string | null {
  try {
    return fs.statSync(file).isFile() ? fs.readFileSync(file, 'utf8') : null
  } catch {
    return null
  }
}

/** Which script's settings block this run has, for the sync record. */
function runningScript(): { script: string; scriptSha256: string } {
  const source = ownSource()
  return { script: source, scriptSha256: BUILT_FROM_SHA256 || sha256(readIfFile(source) ?? '') }
}

/** `npm run build`: dist/record-audio.mjs from the source beside it, written whole or not at all. */
export function writeBuild(root = path.dirname(ownSource())): string {
  const sourceText = fs.readFileSync(path.join(root, SOURCE_NAME), 'utf8')
  const strip = (nodeModule as unknown as { stripTypeScriptTypes?: (code: string) => string }).stripTypeScriptTypes
  if (!strip) throw new Error(`the build needs Node ${OLDEST_NODE} or later (this is ${process.version})`)
  const built = path.join(root, 'dist', 'record-audio.mjs')
  fs.mkdirSync(path.dirname(built), { recursive: true })
  const partial = `${built}.${process.pid}.partial`
  fs.writeFileSync(partial, stampBuild(strip(sourceText), sha256(sourceText)), { mode: 0o755 })
  fs.renameSync(partial, built)
  return built
}

/** The program: this build, or the source edited since, or one line that says why neither. */
async function runLatest(argv: string[]): Promise<number> {
  if (nodeIsTooOld(process.versions.node))
    return sayThen(
      `record-audio: this is Node ${process.version}; it needs Node ${OLDEST_NODE} or later (24 or 26 LTS):` +
        ' install a current Node and run it again (nothing was recorded)',
      1,
    )
  const source = ownSource()
  const text = readIfFile(source)
  const check = checkBuild(
    fileURLToPath(import.meta.url),
    BUILT_FROM_SHA256,
    source,
    text == null ? null : sha256(text),
  )
  // init copies the edited source itself: the way out of the refusal stays open.
  if (check.kind === 'refuse' && argv[0] !== 'init') return sayThen(check.line, 1)
  if (check.kind !== 'run-source') return main(argv)
  const edited = (await import(pathToFileURL(check.source).href)) as { main: typeof main }
  return edited.main(argv)
}

/** `record-audio init`: the script, copied into this folder to be edited, with what it imports installed. */
function initCopy(): number {
  const target = path.resolve(SOURCE_NAME)
  try {
    fs.copyFileSync(ownSource(), target, fs.constants.COPYFILE_EXCL)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST')
      throw new UsageError(
        `./${SOURCE_NAME} is here already (left as it is): edit it and run node ${SOURCE_NAME} <feed_id>`,
      )
    throw new ToolError(
      `cannot write ./${SOURCE_NAME} (${(error as NodeJS.ErrnoException).code}): init in a folder of yours`,
    )
  }
  fs.chmodSync(target, 0o755)
  const ours = JSON.parse(fs.readFileSync(path.join(path.dirname(ownSource()), 'package.json'), 'utf8'))
  const wanted = Object.entries(ours.dependencies as Record<string, string>).map(([name, range]) => `${name}@${range}`)
  const labHasPackage = fs.existsSync('package.json')
  if (!labHasPackage) {
    const lab = {
      name: 'record-audio-lab',
      private: true,
      recordAudioVersion: ours.version,
      dependencies: ours.dependencies,
    }
    fs.writeFileSync('package.json', `${JSON.stringify(lab, null, 2)}\n`, { flag: 'wx' })
  }
  const npmArgs = ['install', '--no-audit', '--no-fund', ...(labHasPackage ? wanted : [])]
  const windows = process.platform === 'win32'
  const npm = spawnSync(windows ? 'npm.cmd' : 'npm', npmArgs, {
    stdio: ['ignore', 'ignore', 'inherit'],
    shell: windows,
  })
  if (npm.status !== 0)
    return sayThen(
      `✖ ./${SOURCE_NAME} is copied, but npm install failed: run npm install ${wanted.join(' ')} here, then` +
        ` node ${SOURCE_NAME} <feed_id>`,
      1,
    )
  return sayThen(
    `✔ ./${SOURCE_NAME} is your copy: edit its settings (the top of the file), then run: node ${SOURCE_NAME} <feed_id>`,
    0,
  )
}

export async function main(argv: string[]): Promise<number> {
  // A closed terminal (SIGHUP) turns writes into EIO errors: the stop must go on regardless.
  for (const stream of [process.stdout, process.stderr]) stream.on('error', () => {})
  $.spawn = spawnWithoutStartupFiles as typeof $.spawn
  let command: Command
  try {
    command = parseCommand(argv, process.platform)
  } catch (error) {
    if (!(error instanceof UsageError)) throw error
    return sayThen(`record-audio: ${error.message}`, 2)
  }
  if (command.kind === 'help') return printThen(`${helpText(process.platform)}\n`, 0)
  if (command.kind === 'version') return printThen(`${packageVersion()}\n`, 0)
  try {
    if (command.kind === 'init') return initCopy()
    if (command.kind === 'repair') return await repairWav(command.file)
    if (command.kind === 'check') return await checkFile(command)
    if (command.kind === 'list-devices') return await listDevices(command.format, command.ffmpeg)
    return command.kind === 'mux' ? await muxLater(command.mux) : await record(command.settings)
  } catch (error) {
    if (error instanceof UsageError) return sayThen(`record-audio: ${error.message}`, 2)
    if (error instanceof ToolError) return sayThen(`record-audio: ${error.message}`, 1)
    // Never a stack trace: one line, and whatever was recorded stays where the run said it is.
    return sayThen(
      `record-audio: unexpected error: ${(error as Error).message ?? error} (files written so far are kept)`,
      1,
    )
  }
}

function invokedDirectly(): boolean {
  try {
    return fs.realpathSync(process.argv[1]) === fs.realpathSync(fileURLToPath(import.meta.url))
  } catch {
    return false
  }
}

if (invokedDirectly()) process.exitCode = await runLatest(process.argv.slice(2))

import Testing
@testable import TopoEngine

/// `audit --since`: a period's records folded into preemptions, hits and misses, victims and
/// work lost, waits and fallbacks, in total and per bucket; the times its options take.
@Suite struct PeriodAuditTests {
    static func record(_ event: DecisionRecord.Event, _ time: Int64, job: UInt32, other: UInt32? = nil, reason: String? = nil,
                       mode: PlacementMode? = nil, level: AffinityLevel? = nil, reached: AffinityLevel? = nil,
                       victims: [UInt32] = [], lost: Int64? = nil) -> DecisionRecord {
        var r = DecisionRecord(event, time: time, job: job, message: "m", reason: reason)
        r.other = other
        r.mode = mode
        r.level = level
        r.reached = reached
        r.victims = victims
        r.lostGPUSeconds = lost
        return r
    }

    /// One day: a guaranteed plan (2 victims, a hit) at 01:00, a degraded best-effort plan (1
    /// victim, a miss) at 05:00, two base-policy victims of one preemptor at 05:30, a wait and a
    /// fallback; a preemption before the period is not counted.
    static func day() -> [DecisionRecord] {
        [
            record(.preempted, -100, job: 50, other: 51, reason: "base-policy", lost: 999),
            record(.plan, 3600, job: 9, mode: .guaranteed, level: .nvlink, reached: .nvlink, victims: [1, 3]),
            record(.preempted, 3601, job: 1, other: 9, reason: "plan", mode: .guaranteed, level: .nvlink, reached: .nvlink, victims: [1, 3], lost: 3600),
            record(.preempted, 3601, job: 3, other: 9, reason: "plan", mode: .guaranteed, level: .nvlink, reached: .nvlink, victims: [1, 3], lost: 3600),
            // The same plan's victim preempted again later is no new preemption.
            record(.preempted, 3700, job: 3, other: 9, reason: "plan", mode: .guaranteed, level: .nvlink, reached: .nvlink, victims: [1, 3], lost: 0),
            record(.released, 3800, job: 9),
            record(.plan, 5 * 3600, job: 10, mode: .bestEffort, level: .nvlink, reached: .node, victims: [4]),
            record(.preempted, 5 * 3600, job: 4, other: 10, reason: "plan", mode: .bestEffort, level: .nvlink, reached: .node, victims: [4], lost: 7200),
            record(.preempted, 5 * 3600 + 1800, job: 5, other: 11, reason: "base-policy", lost: 1800),
            record(.preempted, 5 * 3600 + 1801, job: 6, other: 11, reason: "base-policy", lost: 1800),
            record(.wait, 6 * 3600, job: 12, reason: "no-aligned-plan"),
            record(.wait, 6 * 3600 + 60, job: 12, reason: "victims-draining"),
            record(.fallback, 7 * 3600, job: 13, reason: "no-topology"),
            record(.dropped, 7 * 3600, job: 14, reason: "plan-timeout"),
        ]
    }

    @Test func aDay() {
        var audit = PeriodAudit(from: 0, to: 86_400, bucketSeconds: 3600)
        for r in Self.day() { audit.add(r) }
        audit.finish()
        #expect(audit.preemptions == 3)
        #expect(audit.byChosen == ["plan": 2, "base-policy": 1])
        #expect(audit.byMode == ["guaranteed": 1, "best-effort": 1, "base-policy": 1])
        #expect(audit.hits == 1 && audit.misses == 1 && audit.hitRate == 0.5)
        #expect(audit.victims == 6, "every preempted record in the period, the repeated one included")
        #expect(audit.lostGPUSeconds == 3600 * 2 + 7200 + 3600)
        #expect(audit.plans == 2)
        #expect(audit.waits == ["no-aligned-plan": 1, "victims-draining": 1] && audit.waitingJobs == 1)
        #expect(audit.fallbacks == ["no-topology": 1] && audit.dropped == ["plan-timeout": 1])
        #expect(audit.buckets.count == 24)
        #expect(audit.buckets[1].preemptions == 1 && audit.buckets[1].hits == 1 && audit.buckets[1].victims == 3)
        #expect(audit.buckets[5].preemptions == 2 && audit.buckets[5].misses == 1 && audit.buckets[5].lostGPUSeconds == 7200 + 3600)
        #expect(audit.buckets[6].waits == 2 && audit.buckets[7].fallbacks == 1)
        #expect(audit.firstRecord == 3600 && audit.lastRecord == 7 * 3600)
    }

    /// The grouper: a plan's preemption is complete when its victims are in; a base-policy one two
    /// seconds later or at the end.
    @Test func grouper() {
        var g = PreemptionGrouper()
        let day = Self.day()
        #expect(g.add(day[1]).isEmpty)
        #expect(g.add(day[2]).isEmpty)
        let done = g.add(day[3])
        #expect(done.count == 1 && done[0].victimCount == 2 && done[0].hit == true && done[0].lostGPUSeconds == 7200)
        #expect(g.add(day[4]).isEmpty)
        #expect(g.add(day[8]).isEmpty && g.add(day[9]).isEmpty)
        let base = g.flush(now: 5 * 3600 + 1803)
        #expect(base.count == 1 && base[0].chosenBy == "base-policy" && base[0].victimCount == 2 && base[0].hit == nil)
    }

    /// A long period with narrow buckets is bounded: the buckets widen.
    @Test func bucketsAreBounded() {
        let audit = PeriodAudit(from: 0, to: 365 * 86_400, bucketSeconds: 1)
        #expect(audit.buckets.count <= PeriodAudit.maxBuckets)
        #expect(audit.bucketSeconds >= 365 * 86_400 / PeriodAudit.maxBuckets)
    }

    @Test func times() {
        let now: Int64 = 1_796_236_889
        #expect(PeriodAudit.parseTime("now", now: now) == now)
        #expect(PeriodAudit.parseTime("24h", now: now) == now - 86_400)
        #expect(PeriodAudit.parseTime("7d", now: now) == now - 7 * 86_400)
        #expect(PeriodAudit.parseTime("90m", now: now) == now - 5400)
        #expect(PeriodAudit.parseTime("2026-12-01", now: now) == 1_796_083_200)
        let day: Int64 = 1_796_083_200
        #expect(PeriodAudit.parseTime("2026-12-01T10:00", now: now) == day + 36_000)
        #expect(PeriodAudit.parseTime("2026-12-01T10:00:05Z", now: now) == day + 36_005)
        #expect(PeriodAudit.parseTime("2026-12-01 10:00:05", now: now) == day + 36_005)
        #expect(utcTimestamp(PeriodAudit.parseTime("2024-02-29", now: now) ?? 0) == "2024-02-29T00:00:00Z")
        for bad in ["", "yesterday", "2026-02-30", "2026-13-01", "2026-12-01T25:00", "-5h", "5x", "99999999999d", "2026-12-01T10"] {
            #expect(PeriodAudit.parseTime(bad, now: now) == nil, "\(bad)")
        }
    }

    /// `--replay`'s input: the period's jobs as simulator jobs (times from the period's start,
    /// work = the last run's length, still running: to the period's end), the left-out ones
    /// counted; one node type per layout.
    @Test func replayJobsAndNodeTypes() throws {
        let jobs: [PeriodReplay.Job] = [
            .init(id: 1, submit: 100, start: 110, end: 200, gpus: 2, nodes: 1, preemptor: false),
            .init(id: 2, submit: 150, start: 160, end: nil, gpus: 8, nodes: 2, preemptor: true),   // runs past the end
            .init(id: 3, submit: 50, start: 60, end: 70, gpus: 1, nodes: 1, preemptor: false),     // before the period
            .init(id: 4, submit: 120, start: nil, end: nil, gpus: 1, nodes: 1, preemptor: false),  // never started
            .init(id: 5, submit: 130, start: 140, end: 150, gpus: 0, nodes: 1, preemptor: false),  // no GPUs
            .init(id: 6, submit: 130, start: 140, end: 150, gpus: 3, nodes: 2, preemptor: false),  // 3 GPUs over 2 nodes
            .init(id: 7, submit: 130, start: 140, end: 150, gpus: 16, nodes: 1, preemptor: false), // more than a node holds
        ]
        let (sim, leftOut) = PeriodReplay.simJobs(jobs, from: 100, to: 1000, maxGPUsPerNode: 8)
        #expect(leftOut == 5)
        #expect(sim == [SimJob(submit: 0, gpus: 2, duration: 90, kind: .batch, priority: 1),
                        SimJob(submit: 50, gpus: 4, duration: 840, kind: .inference, priority: 100, nodes: 2)])
        let types = PeriodReplay.nodeTypes(try FragmentationTests.topology())
        #expect(types.map(\.name) == ["8gpu:nvlink=4x2"] && types.map(\.count) == [2])
        #expect((try? types[0].type.topology().gpuCount) == 8)
    }
}

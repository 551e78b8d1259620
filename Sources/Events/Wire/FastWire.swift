/// Hand-written JSON for the messages every instance sends several times (an executor's reports):
/// the same text `Codable` writes and reads, without its generic machinery, which was a tenth of
/// the executor's and the Scheduler's CPU under load. `Codable` stays the reference and the
/// fallback: a test checks both ways on every kind of report.
package enum FastWire {
    /// The header JSON of `ExecutorRequest.reports`, or nil when a value is not one this writes
    /// exactly as `JSONEncoder` does (a floating-point number).
    package static func reportsHeader(executorID: ExecutorID, reports: [Report]) -> [UInt8]? {
        var out = JSONWriter()
        out.bytes.reserveCapacity(128 + reports.count * 160)
        out.open()
        out.key("reports")
        out.open()
        out.key("executorID")
        out.string(executorID.rawValue)
        out.key("reports")
        out.bytes.append(UInt8(ascii: "["))
        for (index, report) in reports.enumerated() {
            if index > 0 { out.bytes.append(UInt8(ascii: ",")) }
            out.open()
            out.key("at")
            out.int(report.at.millis)
            out.key("instanceID")
            out.string(report.instanceID.description)
            out.key("kind")
            out.open()
            switch report.kind {
            case .started:
                out.key("started")
                out.open()
                out.close()
            case .log(let lines):
                out.key("log")
                out.open()
                out.key("lines")
                out.logLines(lines)
                out.close()
            case .steps(let records):
                out.key("steps")
                out.open()
                out.key("records")
                out.stepRecords(records)
                out.close()
            case .finished(let values):
                out.key("finished")
                out.open()
                out.key("out")
                guard out.object(values) else { return nil }
                out.close()
            case .failed(let error, let values):
                out.key("failed")
                out.open()
                out.key("error")
                out.string(error)
                out.key("out")
                guard out.object(values) else { return nil }
                out.close()
            }
            out.close()
            out.key("seq")
            out.uint(report.seq)
            out.close()
        }
        out.bytes.append(UInt8(ascii: "]"))
        out.close()
        out.close()
        return out.bytes
    }
}

import ChronosEngine
import ChronosModel
import ChronosStorage

/// `GET /v1/chronos/experts`: where every routed expert of the served model is now.
///
/// Each MoE layer lists its experts' states in expert order: `hot` (compute-ready), `staging`
/// (read ahead of need), `loading` (a read in flight) or `disk`; and the experts a current
/// prediction names. With `resident` experts every one is `hot`; under `mmap` the OS page cache
/// decides and the states are not known (`layers` is null).
enum ExpertResidencyReport {
    /// The report for `model` as it is now.
    static func json(for model: ServedModel) -> JSONValue {
        let offloaded = model.offloaded
        let summary = offloaded.model.summary
        var report: [String: JSONValue] = [
            "model": .string(model.id), "mode": .string(offloaded.settings.mode.rawValue),
            "budget_bytes": .number(Double(offloaded.budgetBytes)), "total_expert_bytes": .number(Double(offloaded.totalExpertBytes))
        ]
        let placements: [ExpertKey: ExpertPlacement]
        switch offloaded.backing {
        case .mapped:
            report["layers"] = JSONValue.null
            return .object(report)
        case .resident:
            placements = [:]
        case .tiered(let store):
            placements = store.placements()
            let resident = store.residentBytes()
            report["resident_bytes"] = ["hot": .number(Double(resident[.hot] ?? 0)), "staging": .number(Double(resident[.staging] ?? 0))]
        }
        let isResident = offloaded.settings.mode == .resident
        var layers: [JSONValue] = []
        for (layer, count) in summary.expertsPerLayer.enumerated() where count > 0 {
            var states: [JSONValue] = []
            var predicted: [JSONValue] = []
            for expert in 0..<count {
                let placement = placements[ExpertKey(layer: layer, expert: expert)]
                let state =
                    isResident ? "hot" : placement.map { $0.isLoading ? "loading" : $0.tier.rawValue } ?? ResidencyTier.disk.rawValue
                states.append(.string(state))
                if placement?.isPredicted == true { predicted.append(.number(Double(expert))) }
            }
            layers.append(["layer": .number(Double(layer)), "experts": .array(states), "predicted": .array(predicted)])
        }
        report["layers"] = .array(layers)
        return .object(report)
    }
}

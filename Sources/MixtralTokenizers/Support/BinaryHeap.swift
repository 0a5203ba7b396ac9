/// A binary max-heap: `pop` returns the greatest element. Sifts move a hole instead of swapping,
/// and run on the unsafe buffer (this is the inner loop of both BPE implementations).
struct BinaryHeap<Element: Comparable> {
    private(set) var elements: [Element] = []

    init() {}

    var isEmpty: Bool { elements.isEmpty }

    mutating func reserveCapacity(_ n: Int) { elements.reserveCapacity(n) }

    mutating func removeAll() { elements.removeAll(keepingCapacity: true) }

    mutating func push(_ element: Element) {
        elements.append(element)
        elements.withUnsafeMutableBufferPointer { heap in
            var child = heap.count - 1
            while child > 0 {
                let parent = (child - 1) / 2
                if !(heap[parent] < element) { break }
                heap[child] = heap[parent]
                child = parent
            }
            heap[child] = element
        }
    }

    mutating func pop() -> Element? {
        guard let last = elements.popLast() else { return nil }
        if elements.isEmpty { return last }
        return elements.withUnsafeMutableBufferPointer { heap -> Element in
            let top = heap[0]
            let count = heap.count
            var hole = 0
            while true {
                let left = 2 * hole + 1
                if left >= count { break }
                var larger = left
                let right = left + 1
                if right < count && heap[left] < heap[right] { larger = right }
                if !(last < heap[larger]) { break }
                heap[hole] = heap[larger]
                hole = larger
            }
            heap[hole] = last
            return top
        }
    }
}

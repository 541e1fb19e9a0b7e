// The app's single instances of each store.
import { createBrokerStore } from './broker'
import { createMessageStore } from './messages'
import { createTopicStore } from './topics'
import { applyFieldMessages } from './fieldCharts'

export const topics = createTopicStore()
export const messages = createMessageStore({
  onMessages: (list) => {
    topics.applyMessages(list)
    applyFieldMessages(list)
  },
})
export const broker = createBrokerStore()

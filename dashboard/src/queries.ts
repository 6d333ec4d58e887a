// Every operation the dashboard sends. Types come from the committed SDL (codegen.ts); docs/dashboards.md
// lists which view uses which.
import { graphql } from "./gql";

export const AtlasNames = graphql(`
  query AtlasNames { atlases { name complete minLayer maxLayer } }
`);

export const AtlasesOverview = graphql(`
  query AtlasesOverview($bins: Int!, $name: String) {
    atlases(name: $name) {
      name model dModel complete minLayer maxLayer nLayers nSaes nFeatures
      saes {
        key layer module dSae dIn source architecture complete explainedVariance l0 deadFraction ceilingMedian
        controls { predecessor scoreMedian nullMedian nullP999 }
      }
      layerCategories { layer total translated processed newborn unexplained uncategorised }
      scoreHistograms(bins: $bins) { score binEdges counts }
      entryPoints { uid size length feature { label category } }
    }
  }
`);

export const SearchText = graphql(`
  query SearchText($text: String!, $atlas: String, $limit: Int!) {
    search(text: $text, atlas: $atlas, limit: $limit) { score feature { uid } }
  }
`);

export const FeaturesPage = graphql(`
  query FeaturesPage($first: Int!, $after: String, $where: FeatureWhere, $sort: [FeatureSort!]) {
    featuresConnection(first: $first, after: $after, where: $where, sort: $sort) {
      totalCount
      pageInfo { hasNextPage hasPreviousPage endCursor }
      edges { cursor node { uid layer module index category label sRes sAtt sMlp frequency } }
    }
  }
`);

export const FeaturePage = graphql(`
  query FeaturePage($uid: String!) {
    feature(uid: $uid) {
      __typename
      ... on Feature {
        uid atlas layer module index category label frequency sRes sAtt sMlp decoderNorm dSae topContexts maxActivation
        predecessors(topK: 3) { similarity targetRank method feature { uid layer module index category label } }
        successors(topK: 3) { similarity sourceRank method feature { uid layer module index category label } }
        page {
          heldoutTokens firingTokens density
          activationHistogram { binEdges counts }
          exampleGroups { name minActivation maxActivation examples { tokens activations maxIndex } }
          logitLens { positive { token weight } negative { token weight } histogram { binEdges counts } }
        }
        steerability { kl tokens tokenGains benchGain benchN benchAlpha benchConcept }
      }
      ... on FeatureNotFound { uid message }
      ... on InvalidInput { message }
    }
    origin(uid: $uid) {
      __typename
      ... on Origin {
        layer module sourceSimilarity
        bornAs { uid layer category }
        source { uid layer module index label }
        chain { similarity category feature { uid layer module index label } }
      }
      ... on FeatureNotFound { message }
      ... on InvalidInput { message }
    }
  }
`);

export const SaeDensity = graphql(`
  query SaeDensity($atlas: String!) { atlases(name: $atlas) { saes { key densityHistogram { log10BinEdges counts dead } } } }
`);

export const Lineage = graphql(`
  query Lineage($uid: String!, $direction: LineageDirection!, $depth: Int, $minSimilarity: Float!, $moduleMinSimilarity: Float!, $topK: Int!) {
    lineage(uid: $uid, direction: $direction, depth: $depth, minSimilarity: $minSimilarity, moduleMinSimilarity: $moduleMinSimilarity, topK: $topK) {
      seeds truncated lStart lEnd
      nodes { uid layer module index category label sRes sAtt sMlp }
      edges { source target similarity methods }
    }
  }
`);

export const PathQuery = graphql(`
  query PathQuery($from: String!, $to: String!, $minSimilarity: Float!, $maxDepth: Int!) {
    path(from: $from, to: $to, minSimilarity: $minSimilarity, maxDepth: $maxDepth) {
      __typename
      ... on Path {
        score weakestLink
        graph { seeds truncated lStart lEnd nodes { uid layer module index category label sRes sAtt sMlp } edges { source target similarity } }
      }
      ... on FeatureNotFound { uid message }
      ... on InvalidInput { message }
    }
  }
`);

export const CircuitQuery = graphql(`
  query CircuitQuery($uids: [String!]!, $minSimilarity: Float!, $maxDepth: Int!) {
    circuit(uids: $uids, minSimilarity: $minSimilarity, maxDepth: $maxDepth) {
      __typename
      ... on FlowGraph { seeds truncated lStart lEnd nodes { uid layer module index category label sRes sAtt sMlp } edges { source target similarity } }
      ... on FeatureNotFound { uid message }
      ... on InvalidInput { message }
    }
  }
`);

export const SteeringRuns = graphql(`
  query SteeringRuns($atlas: String!) {
    steeringRuns(atlas: $atlas, limit: 10) {
      id createdAt model strategy schedule mode prompts baseline steered seeds seedStrengths
      features { uid coefficient }
    }
  }
`);

export const Steer = graphql(`
  mutation Steer($input: SteerInput!) {
    steer(input: $input) {
      __typename
      ... on SteerSuccess {
        runId model lStart lEnd baselineTokensPerSecond steeredTokensPerSecond
        generations { prompt baseline steered }
        features { uid layer module coefficient mode }
      }
      ... on FeatureNotFound { uid message }
      ... on InvalidInput { message field }
      ... on ModelUnavailable { message }
    }
  }
`);
